package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

// memStore is an in-memory Store: the fuzz test checks the handlers, not
// Redis, and runs thousands of requests a second.
type memStore map[string]json.RawMessage

func (m memStore) GetJSON(_ context.Context, id string) (json.RawMessage, error) {
	if d, ok := m[id]; ok {
		return d, nil
	}
	return nil, stockstore.ErrNotFound
}

func (m memStore) GetManyJSON(_ context.Context, ids []string) ([]json.RawMessage, error) {
	docs := make([]json.RawMessage, len(ids))
	for i, id := range ids {
		docs[i] = m[id]
	}
	return docs, nil
}

func (memStore) Ping(context.Context) error { return nil }

func (memStore) LastHeartbeat(context.Context, string) (time.Time, bool, error) {
	return time.Now(), true, nil
}

func (memStore) Watermarks(context.Context, string) ([]stockstore.Watermark, error) {
	return []stockstore.Watermark{{Partition: 0, Position: position.Position{LSN: 1, Index: 1}}}, nil
}

func (m memStore) LowStock(_ context.Context, _, after string, limit int) ([]string, string, error) {
	if after != "" {
		return nil, "", nil
	}
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	return ids[:min(limit, len(ids))], "", nil
}

// Changes lists every product once; "x:1" is the only cursor it knows and
// "0:0" an expired one.
func (m memStore) Changes(_ context.Context, after string, limit int) ([]stockstore.Change, string, error) {
	switch after {
	case "", "x:1":
	case "0:0":
		return nil, "", stockstore.ErrCursorExpired
	default:
		return nil, "", stockstore.ErrBadCursor
	}
	var out []stockstore.Change
	for id := range m {
		out = append(out, stockstore.Change{ProductID: id, Position: position.Position{LSN: 1, Index: 1}})
	}
	out = append(out, stockstore.Change{ProductID: "GONE", Position: position.Position{LSN: 1, Index: 2}, Deleted: true})
	return out[:min(limit, len(out))], "x:1", nil
}

func (memStore) ChangesHead(context.Context) (string, error) { return "x:1", nil }

// CursorBefore maps every time to "1:0" (the index's start) but the year
// 1, for which changes were trimmed.
func (memStore) CursorBefore(_ context.Context, t time.Time) (string, string, error) {
	if t.Year() <= 1 {
		return "", "", stockstore.ErrCursorExpired
	}
	return "1:0", "1:9", nil
}

// ChangesIn pages Changes's entries by offset; "1:0" to "1:9" is the only
// range it knows, "1:5" a cursor in it and "2:0" an expired one.
func (m memStore) ChangesIn(ctx context.Context, from, upTo string, offset, limit int) ([]stockstore.Change, string, bool, error) {
	switch {
	case from == "2:0":
		return nil, "", false, stockstore.ErrCursorExpired
	case (from != "1:0" && from != "1:5") || upTo != "1:9":
		return nil, "", false, stockstore.ErrBadCursor
	}
	all, _, _ := m.Changes(ctx, "", 1000)
	all = all[min(offset, len(all)):]
	more := len(all) > limit
	return all[:min(limit, len(all))], "1:5", more, nil
}

// No input makes the API panic or answer 500, and every error has the one
// JSON shape.
func FuzzHandlers(f *testing.F) {
	s := snapshot("SKU-1", 10, position.Position{LSN: 1, Index: 1})
	doc, _ := json.Marshal(s.Product())
	h := api.NewServer(api.Deps{Store: memStore{"SKU-1": doc}, PublicCap: 5, APIKeys: []string{"key-0123456789abcdef"}, MaxLag: time.Minute})
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/v1/stock/SKU-1", ""},
		{"GET", "/v1/stock/%00", ""},
		{"POST", "/v1/stock/bulk", `{"product_ids":["SKU-1","SKU-1","x"]}`},
		{"POST", "/v1/stock/bulk", `{"product_ids":[1]}`},
		{"POST", "/v1/stock/bulk", `{"product_ids":null}`},
		{"POST", "/v1/stock/bulk", `[`},
		{"PUT", "/v1/stock/bulk", `{}`},
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/openapi.json", ""},
		{"POST", "/v1/stock/bulk", `{"product_ids":["SKU-1"],"warehouse_ids":["WH-01","WH-01"]}`},
		{"POST", "/v1/stock/bulk", `{"product_ids":["SKU-1"],"warehouse_ids":[]}`},
		{"GET", "/v1/warehouses/WH-01/stock?product_ids=SKU-1,SKU-2,,SKU-1", ""},
		{"GET", "/v1/warehouses/WH%2001/stock?product_ids=SKU-1", ""},
		{"GET", "/v1/warehouses/WH-01/low-stock?limit=2&cursor=SKU-0", ""},
		{"GET", "/v1/warehouses/WH-01/low-stock?limit=-1", ""},
		{"GET", "/v1/stock/changes?cursor=x:1&limit=1", ""},
		{"GET", "/v1/stock/changes?cursor=0:0", ""},
		{"GET", "/v1/stock/changes?cursor=zz&limit=99999999999999999999", ""},
		{"GET", "/v1/stock/changes/head?x=1", ""},
		{"POST", "/v1/batch/stock", `{"product_ids":["SKU-1","NOPE"],"warehouse_id":"WH-01"}`},
		{"POST", "/v1/batch/stock", `{"product_ids":["SKU-1"],"warehouse_id":null}`},
		{"GET", "/v1/inventory/product/SKU-1", ""},
		{"GET", "/v1/inventory/product/SKU%3A1", ""},
		{"POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page":2,"limit":1}`},
		{"POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25t10:00:00z","limit":1e2}`},
		{"POST", "/v1/inventory/recently-updated", `{"since":"0001-01-01T00:00:00Z"}`},
		{"POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page_token":"2~1:5~1:9","page":3}`},
		{"POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page_token":"2~2:0~1:9"}`},
		{"POST", "/v1/inventory/recently-updated", `{"since":"x","page":-1,"limit":"5"}`},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://api"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		rec := httptest.NewRecorder()
		if len(body)%2 == 1 {
			req.Header.Set("X-API-Key", body) // a valid key, a wrong one, odd bytes
		}
		if len(body)%3 == 1 {
			req.Header.Set("If-None-Match", body)
		}
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q %q: status %d: %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && method != http.MethodHead {
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("%s %q: error body %q is not the JSON error shape", method, path, rec.Body)
			}
		}
	})
}
