package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/query-api/api"
)

var commitTime = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)

func snapshot(id string, onHand int64, p position.Position) stockstore.Snapshot {
	return stockstore.Snapshot{
		ProductID: id, Position: p,
		OnHand: onHand, Reserved: 2, Available: onHand - 2, Status: "IN_STOCK",
		Warehouses: []stockstore.Warehouse{
			{WarehouseID: "WH-01", OnHand: onHand, Reserved: 2, Available: onHand - 2, Status: "IN_STOCK", LowStockThreshold: 5},
		},
		CommitTime: commitTime,
	}
}

// newAPI serves a real Redis under a unique prefix holding SKU-1, SKU-2 and
// a deleted SKU-3.
func newAPI(t *testing.T) http.Handler {
	t.Helper()
	h, _ := newAPIWith(t, api.Deps{})
	return h
}

// newAPIWith is newAPI with deps (Store and metrics filled in) and the store.
func newAPIWith(t *testing.T, deps api.Deps) (http.Handler, *stockstore.Store) {
	t.Helper()
	st, _ := storetest.New(t)
	if _, err := st.Apply(context.Background(), []stockstore.Snapshot{
		snapshot("SKU-1", 10, position.Position{LSN: 0x16B3748, Index: 1}),
		snapshot("SKU-2", 20, position.Position{LSN: 0x16B3748, Index: 2}),
		snapshot("SKU-3", 30, position.Position{LSN: 0x16B3748, Index: 3}),
		{ProductID: "SKU-3", Position: position.Position{LSN: 0x16B3748, Index: 4}, Deleted: true},
	}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	deps.Store, deps.Registerer, deps.Gatherer = st, reg, reg
	return api.NewServer(deps), st
}

type errorBody struct {
	Error struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Details json.RawMessage `json:"details"`
	} `json:"error"`
}

// checkError asserts the one error shape: {"error": {"code", "message",
// "details"}}, details an object.
func checkError(t *testing.T, res *http.Response, body []byte, code string) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error content type = %q, want JSON", ct)
	}
	var e errorBody
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if e.Error.Code != code || e.Error.Message == "" || !strings.HasPrefix(string(e.Error.Details), "{") {
		t.Errorf("error body %s: want code %q, a message and an object of details", body, code)
	}
}

func do(t *testing.T, h http.Handler, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	return doWith(t, h, method, path, body, nil)
}

func doWith(t *testing.T, h http.Handler, method, path, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// ids is a bulk body of n distinct ids followed by extra.
func ids(n int, prefix string, extra ...string) string {
	list := make([]string, 0, n+len(extra))
	for i := range n {
		list = append(list, fmt.Sprintf("%s%d", prefix, i))
	}
	b, _ := json.Marshal(map[string][]string{"product_ids": append(list, extra...)})
	return string(b)
}

func TestErrors(t *testing.T) {
	h := newAPI(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown product", "GET", "/v1/stock/NOPE", "", 404, "not_found"},
		{"deleted product", "GET", "/v1/stock/SKU-3", "", 404, "not_found"},
		{"id with a bad character", "GET", "/v1/stock/SKU%201", "", 400, "invalid_product_id"},
		{"id too long", "GET", "/v1/stock/" + strings.Repeat("x", 129), "", 400, "invalid_product_id"},
		{"unknown route", "GET", "/v1/nothing", "", 404, "not_found"},
		{"root", "GET", "/", "", 404, "not_found"},
		{"wrong method", "DELETE", "/v1/stock/SKU-1", "", 405, "method_not_allowed"},
		{"bulk of 1001", "POST", "/v1/stock/bulk", ids(1001, "P"), 400, "too_many_ids"},
		{"bulk without ids", "POST", "/v1/stock/bulk", `{}`, 400, "bad_request"},
		{"bulk of none", "POST", "/v1/stock/bulk", `{"product_ids":[]}`, 400, "bad_request"},
		{"bulk unknown field", "POST", "/v1/stock/bulk", `{"product_ids":["SKU-1"],"limit":3}`, 400, "unknown_field"},
		{"bulk bad JSON", "POST", "/v1/stock/bulk", `{"product_ids":[`, 400, "invalid_json"},
		{"bulk empty body", "POST", "/v1/stock/bulk", ``, 400, "invalid_json"},
		{"bulk wrong type", "POST", "/v1/stock/bulk", `{"product_ids":"SKU-1"}`, 400, "invalid_json"},
		{"bulk trailing data", "POST", "/v1/stock/bulk", `{"product_ids":["SKU-1"]} {}`, 400, "invalid_json"},
		{"bulk bad id", "POST", "/v1/stock/bulk", `{"product_ids":["SKU-1","a b"]}`, 400, "invalid_product_id"},
		{"bulk empty id", "POST", "/v1/stock/bulk", `{"product_ids":[""]}`, 400, "invalid_product_id"},
		{"bulk body over 256 KiB", "POST", "/v1/stock/bulk", `{"product_ids":["` + strings.Repeat("x", 300<<10) + `"]}`, 413, "payload_too_large"},
		{"bulk empty warehouse filter", "POST", "/v1/stock/bulk", `{"product_ids":["SKU-1"],"warehouse_ids":[]}`, 400, "bad_request"},
		{"bulk bad warehouse id", "POST", "/v1/stock/bulk", `{"product_ids":["SKU-1"],"warehouse_ids":["W H"]}`, 400, "invalid_warehouse_id"},
		{"unknown query parameter", "GET", "/v1/stock/SKU-1?fields=x", "", 400, "unknown_field"},
		{"warehouse stock bad warehouse", "GET", "/v1/warehouses/W%20H/stock?product_ids=SKU-1", "", 400, "invalid_warehouse_id"},
		{"warehouse stock without ids", "GET", "/v1/warehouses/WH-01/stock", "", 400, "bad_request"},
		{"warehouse stock bad id", "GET", "/v1/warehouses/WH-01/stock?product_ids=SKU-1,a%20b", "", 400, "invalid_product_id"},
		{"low stock limit 0", "GET", "/v1/warehouses/WH-01/low-stock?limit=0", "", 422, "invalid_parameter"},
		{"low stock limit too big", "GET", "/v1/warehouses/WH-01/low-stock?limit=1001", "", 422, "invalid_parameter"},
		{"low stock bad cursor", "GET", "/v1/warehouses/WH-01/low-stock?cursor=a%20b", "", 422, "invalid_parameter"},
		{"changes limit not a number", "GET", "/v1/stock/changes?limit=ten", "", 422, "invalid_parameter"},
		{"changes cursor never handed out", "GET", "/v1/stock/changes?cursor=nonsense", "", 422, "invalid_parameter"},
		{"unknown api key", "GET", "/v1/stock/SKU-1", "", 401, "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res *http.Response
			var body []byte
			if tt.code == "invalid_api_key" {
				res, body = doWith(t, h, tt.method, tt.path, tt.body, map[string]string{"X-API-Key": "not-a-key"})
			} else {
				res, body = do(t, h, tt.method, tt.path, tt.body)
			}
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d; body %s", res.StatusCode, tt.status, body)
			}
			checkError(t, res, body, tt.code)
		})
	}
}

func TestGetStock(t *testing.T) {
	h := newAPI(t)
	res, body := do(t, h, "GET", "/v1/stock/SKU-1", "")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type = %q", ct)
	}
	var got stockstore.Product
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields() // the answer shape has exactly these fields
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	want := stockstore.Product{
		ProductID: "SKU-1", OnHand: 10, Reserved: 2, Available: 8, Status: "IN_STOCK",
		Warehouses: []stockstore.Warehouse{{WarehouseID: "WH-01", OnHand: 10, Reserved: 2, Available: 8, Status: "IN_STOCK", LowStockThreshold: 5}},
		Position:   "0/16B3748:1", CommitTime: commitTime,
	}
	if got.ProductID != want.ProductID || got.OnHand != want.OnHand || got.Available != want.Available ||
		got.Position != want.Position || !got.CommitTime.Equal(want.CommitTime) || !slices.Equal(got.Warehouses, want.Warehouses) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(string(body), `"commit_time":"2026-11-25T10:00:00.123456Z"`) {
		t.Errorf("commit_time not RFC 3339 UTC with microseconds: %s", body)
	}
}

type bulkBody struct {
	Products []stockstore.Product `json:"products"`
	NotFound []string             `json:"not_found"`
}

func TestBulk(t *testing.T) {
	h := newAPI(t)
	tests := []struct {
		name         string
		body         string
		wantIDs      []string
		wantNotFound []string
	}{
		{"order kept", `{"product_ids":["SKU-2","SKU-1"]}`, []string{"SKU-2", "SKU-1"}, []string{}},
		{"duplicates folded", `{"product_ids":["SKU-2","NOPE","SKU-1","SKU-2","NOPE"]}`, []string{"SKU-2", "SKU-1"}, []string{"NOPE"}},
		{"deleted not found", `{"product_ids":["SKU-3"]}`, []string{}, []string{"SKU-3"}},
		{"1000 ids", ids(998, "N", "SKU-1", "SKU-2"), []string{"SKU-1", "SKU-2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := do(t, h, "POST", "/v1/stock/bulk", tt.body)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			var got bulkBody
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if got.Products == nil || got.NotFound == nil {
				t.Errorf("products and not_found must be arrays, never null: %s", body)
			}
			gotIDs := []string{}
			for _, p := range got.Products {
				gotIDs = append(gotIDs, p.ProductID)
			}
			if !slices.Equal(gotIDs, tt.wantIDs) {
				t.Errorf("products %v, want %v", gotIDs, tt.wantIDs)
			}
			if tt.wantNotFound != nil && !slices.Equal(got.NotFound, tt.wantNotFound) {
				t.Errorf("not_found %v, want %v", got.NotFound, tt.wantNotFound)
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	h := newAPI(t)
	do(t, h, "GET", "/v1/stock/SKU-1", "")
	do(t, h, "GET", "/v1/stock/NOPE", "")
	for _, path := range []string{"/healthz", "/readyz"} {
		if res, body := do(t, h, "GET", path, ""); res.StatusCode != 200 {
			t.Errorf("%s: %d %s", path, res.StatusCode, body)
		}
	}
	res, body := do(t, h, "GET", "/metrics", "")
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	for _, want := range []string{
		`stock_api_requests_total{code="200",method="GET",route="/v1/stock/:product_id"} 1`,
		`stock_api_requests_total{code="404",method="GET",route="/v1/stock/:product_id"} 1`,
		`stock_api_request_duration_seconds_bucket{code="200",method="GET",route="/v1/stock/:product_id"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// With Redis unreachable every read answers 503 in the JSON shape, quickly.
func TestRedisDown(t *testing.T) {
	cfg := stockstore.DefaultClientConfig()
	cfg.Addrs = []string{"127.0.0.1:1"} // nothing listens on port 1
	cfg.MaxRetries = 0
	rdb := stockstore.NewClient(cfg)
	t.Cleanup(func() { rdb.Close() })
	st, err := stockstore.New(rdb, "unused:")
	if err != nil {
		t.Fatal(err)
	}
	h := api.NewServer(api.Deps{Store: st, StoreTimeout: 300 * time.Millisecond})
	tests := []struct{ name, method, path, body, code string }{
		{"get", "GET", "/v1/stock/SKU-1", "", "unavailable"},
		{"bulk", "POST", "/v1/stock/bulk", `{"product_ids":["SKU-1","SKU-2"]}`, "unavailable"},
		{"warehouse stock", "GET", "/v1/warehouses/WH-01/stock?product_ids=SKU-1", "", "unavailable"},
		{"low stock", "GET", "/v1/warehouses/WH-01/low-stock", "", "unavailable"},
		{"changes", "GET", "/v1/stock/changes", "", "unavailable"},
		{"readyz", "GET", "/readyz", "", "not_ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, body := do(t, h, tt.method, tt.path, tt.body)
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %s, want under a second", d)
			}
			if res.StatusCode != 503 {
				t.Fatalf("status %d, want 503: %s", res.StatusCode, body)
			}
			checkError(t, res, body, tt.code)
			if res.Header.Get("Retry-After") == "" {
				t.Errorf("no Retry-After on 503")
			}
		})
	}
	// Liveness does not depend on Redis.
	if res, _ := do(t, h, "GET", "/healthz", ""); res.StatusCode != 200 {
		t.Errorf("/healthz = %d with redis down, want 200", res.StatusCode)
	}
}
