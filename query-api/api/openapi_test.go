package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

// The served spec describes every route, and real answers (status, content
// type, headers, body) of each route, successes and errors, validate
// against it.
func TestOpenAPIMatchesRealResponses(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{PublicCap: 50, APIKeys: []string{apiKey}, RateLimit: 1000, RateBurst: 1000})
	apply(t, st, twoWarehouses("P-2W", position.Position{LSN: 9, Index: 1}))
	if _, err := st.Apply(context.Background(), nil, stockstore.Watermark{
		Topic: "stock.levels.v1", Partition: 0, Offset: 1, Position: position.Position{LSN: 9, Index: 1}, CommitTime: commitTime, AppliedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}

	res, spec := do(t, h, "GET", "/openapi.json", "")
	if res.StatusCode != 200 || !bytes.Equal(spec, api.OpenAPISpec()) {
		t.Fatalf("/openapi.json: %d", res.StatusCode)
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatal(err)
	}
	if doc.GetSpecInfo().Version != "3.1.0" {
		t.Errorf("spec version %q, want 3.1.0", doc.GetSpecInfo().Version)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("building validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("spec invalid: %s: %s", e.Message, e.Reason)
		}
	}

	head := struct{ cursor string }{}
	_, body := do(t, h, "GET", "/v1/stock/changes/head", "")
	head.cursor = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(string(body)), `{"cursor":"`), `"}`)

	key := map[string]string{"X-API-Key": apiKey}
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
	}{
		{"get", "GET", "/v1/stock/P-2W", "", nil, 200},
		{"get exact", "GET", "/v1/stock/P-2W", "", key, 200},
		{"get 404", "GET", "/v1/stock/NOPE", "", nil, 404},
		{"get 400", "GET", "/v1/stock/a%20b", "", nil, 400},
		{"get 401", "GET", "/v1/stock/P-2W", "", map[string]string{"X-API-Key": "wrong"}, 401},
		{"get 304", "GET", "/v1/stock/P-2W", "", map[string]string{"If-None-Match": "*"}, 304},
		{"bulk", "POST", "/v1/stock/bulk", `{"product_ids":["P-2W","SKU-1","NOPE"]}`, nil, 200},
		{"bulk filtered", "POST", "/v1/stock/bulk", `{"product_ids":["P-2W"],"warehouse_ids":["WH-02"]}`, key, 200},
		{"bulk 400", "POST", "/v1/stock/bulk", `{"product_ids":["P-2W"],"nope":1}`, nil, 400},
		{"bulk 413", "POST", "/v1/stock/bulk", `{"product_ids":["` + strings.Repeat("x", 300<<10) + `"]}`, nil, 413},
		{"warehouse stock", "GET", "/v1/warehouses/WH-02/stock?product_ids=P-2W,SKU-1,NOPE", "", nil, 200},
		{"warehouse stock 400", "GET", "/v1/warehouses/WH-02/stock", "", nil, 400},
		{"low stock", "GET", "/v1/warehouses/WH-02/low-stock?limit=10", "", nil, 200},
		{"low stock 422", "GET", "/v1/warehouses/WH-02/low-stock?limit=0", "", nil, 422},
		{"changes", "GET", "/v1/stock/changes?limit=10", "", nil, 200},
		{"changes from head", "GET", "/v1/stock/changes?cursor=" + head.cursor, "", key, 200},
		{"changes 422", "GET", "/v1/stock/changes?cursor=bogus", "", nil, 422},
		{"changes expired", "GET", "/v1/stock/changes?cursor=7:0", "", nil, 410},
		{"changes head", "GET", "/v1/stock/changes/head", "", nil, 200},
		{"batch", "POST", "/v1/batch/stock", `{"product_ids":["P-2W","SKU-1","NOPE"]}`, key, 200},
		{"batch of a warehouse", "POST", "/v1/batch/stock", `{"product_ids":["P-2W"],"warehouse_id":"WH-02"}`, nil, 200},
		{"batch 400", "POST", "/v1/batch/stock", `{"product_ids":[]}`, nil, 400},
		{"batch 413", "POST", "/v1/batch/stock", `{"product_ids":["` + strings.Repeat("x", 300<<10) + `"]}`, nil, 413},
		{"inventory product", "GET", "/v1/inventory/product/P-2W", "", key, 200},
		{"inventory product 404", "GET", "/v1/inventory/product/SKU-3", "", nil, 404},
		{"recently updated", "POST", "/v1/inventory/recently-updated", `{"since":"2026-01-01T00:00:00Z","limit":2}`, nil, 200},
		{"recently updated of a warehouse", "POST", "/v1/inventory/recently-updated", `{"since":"2026-01-01T00:00:00Z","warehouse_id":"WH-02","page":2,"limit":2}`, key, 200},
		{"recently updated 400", "POST", "/v1/inventory/recently-updated", `{"page":1}`, nil, 400},
		{"recently updated 410", "POST", "/v1/inventory/recently-updated", `{"since":"2026-01-01T00:00:00Z","page_token":"2~7:0~7:9"}`, nil, 410},
		{"recently updated 422", "POST", "/v1/inventory/recently-updated", `{"since":"yesterday"}`, nil, 422},
		{"healthz", "GET", "/healthz", "", nil, 200},
		{"readyz", "GET", "/readyz", "", nil, 200},
		{"metrics", "GET", "/metrics", "", nil, 200},
		{"openapi", "GET", "/openapi.json", "", nil, 200},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, rec.Body)
			}
			// The validator reads the body; give it a fresh reader.
			b, _ := io.ReadAll(res.Body)
			res.Body = io.NopCloser(bytes.NewReader(b))
			vreq := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if ok, verrs := v.ValidateHttpResponse(vreq, res); !ok {
				for _, e := range verrs {
					t.Errorf("%s %s -> %d: %s: %s", tc.method, tc.path, res.StatusCode, e.Message, e.Reason)
				}
			}
			if tc.status == 200 && tc.path != "/metrics" && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				t.Errorf("content type %q", res.Header.Get("Content-Type"))
			}
		})
		covered[tc.method+" "+routeOf(tc.path)] = true
	}

	// Every route the server has is in the spec and exercised above.
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`:([a-z_]+)`)
	for _, r := range h.(*echo.Echo).Routes() {
		if strings.HasPrefix(r.Method, "echo_route") || r.Path == "/*" || r.Method == "echo_route_any" {
			continue
		}
		specPath := param.ReplaceAllString(r.Path, "{$1}")
		item, ok := model.Model.Paths.PathItems.Get(specPath)
		if !ok || item.GetOperations().Len() == 0 {
			t.Errorf("route %s %s is not in the spec", r.Method, r.Path)
			continue
		}
		if !covered[r.Method+" "+specPath] {
			t.Errorf("route %s %s has no response validated here", r.Method, specPath)
		}
	}
}

// routeOf maps a request path to its spec path.
func routeOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 4 && parts[1] == "v1" && parts[2] == "stock" && parts[3] != "bulk" && parts[3] != "changes":
		return "/v1/stock/{product_id}"
	case len(parts) == 5 && parts[2] == "inventory" && parts[3] == "product":
		return "/v1/inventory/product/{product_id}"
	case len(parts) == 5 && parts[2] == "warehouses":
		return "/v1/warehouses/{warehouse_id}/" + parts[4]
	}
	return path
}

var _ http.Handler = (*echo.Echo)(nil)
