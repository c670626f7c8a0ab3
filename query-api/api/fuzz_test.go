package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

func (m memStore) GetManyJSON(_ context.Context, ids []string) ([]json.RawMessage, []string, error) {
	var docs []json.RawMessage
	var notFound []string
	for _, id := range ids {
		if d, ok := m[id]; ok {
			docs = append(docs, d)
		} else {
			notFound = append(notFound, id)
		}
	}
	return docs, notFound, nil
}

func (memStore) Ping(context.Context) error { return nil }

// No input makes the API panic or answer 500, and every error has the one
// JSON shape.
func FuzzHandlers(f *testing.F) {
	s := snapshot("SKU-1", 10, position.Position{LSN: 1, Index: 1})
	doc, _ := json.Marshal(s.Product())
	h := api.NewServer(api.Deps{Store: memStore{"SKU-1": doc}})
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/v1/stock/SKU-1", ""},
		{"GET", "/v1/stock/%00", ""},
		{"POST", "/v1/stock/bulk", `{"product_ids":["SKU-1","SKU-1","x"]}`},
		{"POST", "/v1/stock/bulk", `{"product_ids":[1]}`},
		{"POST", "/v1/stock/bulk", `{"product_ids":null}`},
		{"POST", "/v1/stock/bulk", `[`},
		{"PUT", "/v1/stock/bulk", `{}`},
		{"GET", "/healthz", ""},
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
