package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

// withSafety is a product whose v1 available holds back safety stock, so
// that the old system's number (on_hand - reserved) differs from it: WH-01
// 50 on hand, 5 reserved, 5 safety; WH-02 3 on hand, 4 reserved
// (oversold).
func withSafety(id string, p position.Position, at time.Time) stockstore.Snapshot {
	return stockstore.Snapshot{
		ProductID: id, Position: p, CommitTime: at,
		OnHand: 53, Reserved: 9, Available: 39, Status: "IN_STOCK",
		Warehouses: []stockstore.Warehouse{
			{WarehouseID: "WH-01", OnHand: 50, Reserved: 5, Available: 40, Status: "IN_STOCK", LowStockThreshold: 10},
			{WarehouseID: "WH-02", OnHand: 3, Reserved: 4, Available: -1, Status: "OUT_OF_STOCK", LowStockThreshold: 5},
		},
	}
}

func TestBatchStock(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{PublicCap: 20, APIKeys: []string{apiKey}})
	apply(t, st, withSafety("P-S", position.Position{LSN: 0x20, Index: 1}, commitTime))
	key := map[string]string{"X-API-Key": apiKey}
	tests := []struct {
		name   string
		body   string
		header map[string]string
		want   map[string]int64
	}{
		// SKU-1: 10 on hand, 2 reserved in WH-01; SKU-3 deleted.
		{"on_hand - reserved, summed", `{"product_ids":["P-S","SKU-1"]}`, key, map[string]int64{"P-S": 44, "SKU-1": 8}},
		{"unknown and deleted are 0, duplicates folded", `{"product_ids":["NOPE","SKU-3","SKU-1","NOPE"]}`, key,
			map[string]int64{"NOPE": 0, "SKU-3": 0, "SKU-1": 8}},
		{"one warehouse", `{"product_ids":["P-S","SKU-1"],"warehouse_id":"WH-01"}`, key, map[string]int64{"P-S": 45, "SKU-1": 8}},
		{"oversold stays negative", `{"product_ids":["P-S"],"warehouse_id":"WH-02"}`, key, map[string]int64{"P-S": -1}},
		{"no row in the warehouse", `{"product_ids":["SKU-1"],"warehouse_id":"WH-02"}`, key, map[string]int64{"SKU-1": 0}},
		{"null warehouse is every warehouse", `{"product_ids":["P-S"],"warehouse_id":null}`, key, map[string]int64{"P-S": 44}},
		{"public view caps the difference", `{"product_ids":["P-S","SKU-1"]}`, nil, map[string]int64{"P-S": 20, "SKU-1": 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := doWith(t, h, "POST", "/v1/batch/stock", tt.body, tt.header)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			got := decode[struct {
				Stocks map[string]int64 `json:"stocks"`
			}](t, body) // exactly the old shape: no other field
			if !maps.Equal(got.Stocks, tt.want) {
				t.Errorf("stocks %v, want %v", got.Stocks, tt.want)
			}
			if res.Header.Get("ETag") == "" || res.Header.Get("Cache-Control") == "" {
				t.Errorf("no ETag or Cache-Control: %v", res.Header)
			}
		})
	}
}

func TestCompatBadInput(t *testing.T) {
	h := newAPI(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"batch of 1001", "POST", "/v1/batch/stock", ids(1001, "P"), 400, "too_many_ids"},
		{"batch of none", "POST", "/v1/batch/stock", `{"product_ids":[]}`, 400, "bad_request"},
		{"batch without ids", "POST", "/v1/batch/stock", `{"warehouse_id":"WH-01"}`, 400, "bad_request"},
		{"batch id too long", "POST", "/v1/batch/stock", `{"product_ids":["` + strings.Repeat("x", 129) + `"]}`, 400, "invalid_product_id"},
		{"batch bad warehouse", "POST", "/v1/batch/stock", `{"product_ids":["SKU-1"],"warehouse_id":"W H"}`, 400, "invalid_warehouse_id"},
		{"batch empty warehouse", "POST", "/v1/batch/stock", `{"product_ids":["SKU-1"],"warehouse_id":""}`, 400, "invalid_warehouse_id"},
		{"batch warehouse list", "POST", "/v1/batch/stock", `{"product_ids":["SKU-1"],"warehouse_id":["WH-01"]}`, 400, "invalid_json"},
		{"batch unknown field", "POST", "/v1/batch/stock", `{"product_ids":["SKU-1"],"warehouse_ids":["WH-01"]}`, 400, "unknown_field"},
		{"product bad id", "GET", "/v1/inventory/product/a%20b", "", 400, "invalid_product_id"},
		{"product unknown", "GET", "/v1/inventory/product/NOPE", "", 404, "not_found"},
		{"product deleted", "GET", "/v1/inventory/product/SKU-3", "", 404, "not_found"},
		{"product query parameter", "GET", "/v1/inventory/product/SKU-1?warehouse_id=WH-01", "", 400, "unknown_field"},
		{"recent without since", "POST", "/v1/inventory/recently-updated", `{"page":1}`, 400, "bad_request"},
		{"recent since not a time", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25"}`, 422, "invalid_parameter"},
		{"recent since a number", "POST", "/v1/inventory/recently-updated", `{"since":1}`, 400, "invalid_json"},
		{"recent page 0", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page":0}`, 422, "invalid_parameter"},
		{"recent page a fraction", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page":1.5}`, 422, "invalid_parameter"},
		{"recent page a string", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page":"2"}`, 422, "invalid_parameter"},
		{"recent limit 1001", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","limit":1001}`, 422, "invalid_parameter"},
		{"recent bad warehouse", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","warehouse_id":"W H"}`, 400, "invalid_warehouse_id"},
		{"recent bad token", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page_token":"x"}`, 422, "invalid_parameter"},
		{"recent token of page 1", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page_token":"1~0:0~0:5"}`, 422, "invalid_parameter"},
		{"recent token of another generation", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","page_token":"2~9:0~9:5"}`, 410, "cursor_expired"},
		{"recent unknown field", "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T10:00:00Z","cursor":"0:0"}`, 400, "unknown_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := do(t, h, tt.method, tt.path, tt.body)
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d; body %s", res.StatusCode, tt.status, body)
			}
			checkError(t, res, body, tt.code)
		})
	}
}

type inventoryBody struct {
	ProductID  string `json:"product_id"`
	Warehouses []struct {
		WarehouseID string `json:"warehouse_id"`
		OnHand      int64  `json:"on_hand"`
		Reserved    int64  `json:"reserved"`
		Available   int64  `json:"available"`
	} `json:"warehouses"`
	TotalOnHand    int64      `json:"total_on_hand"`
	TotalReserved  int64      `json:"total_reserved"`
	TotalAvailable int64      `json:"total_available"`
	UpdatedAt      *time.Time `json:"updated_at"`
	Deleted        bool       `json:"deleted"`
}

func TestInventoryProduct(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	apply(t, st, withSafety("P:S", position.Position{LSN: 0x20, Index: 1}, commitTime))
	// The id's ':' sent escaped, as some clients do.
	res, body := do(t, h, "GET", "/v1/inventory/product/P%3AS", "")
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	got := decode[inventoryBody](t, body)
	if got.ProductID != "P:S" || got.TotalOnHand != 53 || got.TotalReserved != 9 || got.TotalAvailable != 44 ||
		got.UpdatedAt == nil || !got.UpdatedAt.Equal(commitTime) || len(got.Warehouses) != 2 ||
		got.Warehouses[0].Available != 45 || got.Warehouses[1].Available != -1 {
		t.Errorf("got %s", body)
	}
	if strings.Contains(string(body), `"deleted"`) {
		t.Errorf("a product answer has no deleted field: %s", body)
	}
}

type recentPage struct {
	Items         []inventoryBody `json:"items"`
	Page          int             `json:"page"`
	Limit         int             `json:"limit"`
	HasMore       bool            `json:"has_more"`
	NextPageToken *string         `json:"next_page_token"`
}

// postRecent asks recently-updated and decodes the page.
func postRecent(t *testing.T, h http.Handler, body string) recentPage {
	t.Helper()
	res, b := do(t, h, "POST", "/v1/inventory/recently-updated", body)
	if res.StatusCode != 200 {
		t.Fatalf("%s: status %d: %s", body, res.StatusCode, b)
	}
	return decode[recentPage](t, b)
}

// pageAll pages through recently-updated from since, by token or by page
// number, and returns the ids in answer order.
func pageAll(t *testing.T, h http.Handler, since time.Time, limit int, byToken bool, between func(page int)) []string {
	t.Helper()
	var seen []string
	token := ""
	for page := 1; page < 100; page++ {
		req := map[string]any{"since": since.Format(time.RFC3339Nano), "limit": limit, "page": page}
		if byToken && token != "" {
			req["page_token"] = token
		}
		b, _ := json.Marshal(req)
		p := postRecent(t, h, string(b))
		if p.Page != page || p.Limit != limit || len(p.Items) > limit {
			t.Fatalf("page %d: page %d limit %d with %d items", page, p.Page, p.Limit, len(p.Items))
		}
		for _, it := range p.Items {
			seen = append(seen, it.ProductID)
		}
		if !p.HasMore {
			if p.NextPageToken != nil {
				t.Errorf("last page with a token")
			}
			return seen
		}
		if p.NextPageToken == nil {
			t.Fatalf("page %d: has_more without a token", page)
		}
		token = *p.NextPageToken
		if between != nil {
			between(page)
		}
	}
	t.Fatal("no last page")
	return nil
}

// at is a product in WH-01 and WH-02 committed at a time.
func at(id string, lsn uint64, when time.Time) stockstore.Snapshot {
	s := twoWarehouses(id, position.Position{LSN: lsn, Index: 1})
	s.CommitTime = when
	return s
}

func TestRecentlyUpdatedMapsSinceOntoTheIndex(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	base := commitTime.Add(time.Hour) // after newAPIWith's products
	for i := range 10 {
		apply(t, st, at(fmt.Sprintf("A%d", i), 0x100+uint64(i), base.Add(time.Duration(i)*time.Minute)))
	}
	since := base.Add(5 * time.Minute)
	// The default margin is 2 minutes: A3 and A4, committed within it
	// before since, come too.
	want := []string{"A3", "A4", "A5", "A6", "A7", "A8", "A9"}
	if got := pageAll(t, h, since, 100, false, nil); !slices.Equal(got, want) {
		t.Fatalf("since %s: %v, want %v", since, got, want)
	}
	// A change committed long before since but applied after everything
	// (a partition that lagged) is answered, and does not carry the start
	// past the products it overtook.
	apply(t, st, at("LATE", 0x200, base))
	if got := pageAll(t, h, since, 100, false, nil); !slices.Equal(got, append(want, "LATE")) {
		t.Fatalf("after a late change: %v, want %v and LATE", got, want)
	}
	// A since after everything: nothing, on one last page.
	if got := pageAll(t, h, base.Add(time.Hour), 100, false, nil); len(got) != 0 {
		t.Errorf("since after every change: %v", got)
	}
	// A since before everything: every product once, the deleted one too.
	all := pageAll(t, h, commitTime.Add(-time.Hour), 5, false, nil)
	slices.Sort(all)
	if w := []string{"A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "LATE", "SKU-1", "SKU-2", "SKU-3"}; !slices.Equal(all, w) {
		t.Errorf("since before every change: %v, want %v", all, w)
	}
}

func TestRecentlyUpdatedItems(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{PublicCap: 40, APIKeys: []string{apiKey}})
	apply(t, st, withSafety("P-S", position.Position{LSN: 0x20, Index: 1}, commitTime))
	req := `{"since":"2026-11-25T09:00:00Z","warehouse_id":"WH-02","limit":1000}`
	res, body := doWith(t, h, "POST", "/v1/inventory/recently-updated", req, map[string]string{"X-API-Key": apiKey})
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	p := decode[recentPage](t, body)
	items := map[string]inventoryBody{}
	for _, it := range p.Items {
		items[it.ProductID] = it
	}
	// Rows and totals of WH-02 only; SKU-1 has none there but is listed.
	if ps := items["P-S"]; len(ps.Warehouses) != 1 || ps.TotalAvailable != -1 || ps.TotalOnHand != 3 || ps.Deleted || ps.UpdatedAt == nil {
		t.Errorf("P-S in WH-02: %+v", ps)
	}
	if s1, ok := items["SKU-1"]; !ok || len(s1.Warehouses) != 0 || s1.TotalAvailable != 0 {
		t.Errorf("SKU-1 in WH-02: %+v (listed %v)", s1, ok)
	}
	if s3 := items["SKU-3"]; !s3.Deleted || s3.UpdatedAt != nil || s3.Warehouses == nil || len(s3.Warehouses) != 0 {
		t.Errorf("deleted SKU-3: %+v", s3)
	}
	if !strings.Contains(string(body), `"updated_at":null,"deleted":true`) {
		t.Errorf("a deleted item has updated_at null: %s", body)
	}
	// The public view caps on_hand - reserved, not a difference of caps.
	_, body = do(t, h, "POST", "/v1/inventory/recently-updated", `{"since":"2026-11-25T09:00:00Z","limit":1000}`)
	for _, it := range decode[recentPage](t, body).Items {
		if it.ProductID == "P-S" && (it.TotalAvailable != 40 || it.TotalOnHand != 40 || it.Warehouses[0].Available != 40) {
			t.Errorf("capped P-S: %+v", it)
		}
	}
}

// Paging with next_page_token goes through exactly the snapshot of the
// first call while products change: each entry once, none missed.
func TestRecentlyUpdatedTokenPagesASnapshot(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	base := commitTime.Add(time.Hour)
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("B%02d", i)
		apply(t, st, at(id, 0x100+uint64(i), base.Add(time.Duration(i)*time.Second)))
		want = append(want, id)
	}
	since := base.Add(time.Minute) // every B is within the margin before it
	lsn := uint64(0x1000)
	got := pageAll(t, h, since, 10, true, func(page int) {
		// Between pages, a product already answered changes (it moves
		// to the end of the index) and a new one appears.
		lsn++
		apply(t, st, at(fmt.Sprintf("B%02d", page-1), lsn, base.Add(time.Hour)))
		apply(t, st, at(fmt.Sprintf("NEW%d", page), lsn+0x100, base.Add(time.Hour)))
	})
	// SKU-3's deletion, right before them, keeps no commit time: it is
	// answered rather than risked.
	if want = append([]string{"SKU-3"}, want...); !slices.Equal(got, want) {
		t.Fatalf("paged by token: %v\nwant %v", got, want)
	}
	// The next run from the same since has the changed and new products
	// too (this one by page number, nothing changing meanwhile).
	next := pageAll(t, h, since, 10, false, nil)
	for _, id := range []string{"B00", "B01", "NEW1", "NEW2"} {
		if !slices.Contains(next, id) {
			t.Errorf("next run lacks %s: %v", id, next)
		}
	}
}

func TestRecentlyUpdatedSinceBeforeTheWindowIsGone(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	for i := range 5 {
		apply(t, st, at(fmt.Sprintf("T%d", i), 0x100+uint64(i), commitTime.Add(time.Duration(i)*time.Hour)))
	}
	if _, err := st.TrimChanges(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	res, body := do(t, h, "POST", "/v1/inventory/recently-updated", `{"since":"2000-01-01T00:00:00Z"}`)
	if res.StatusCode != 410 {
		t.Fatalf("status %d, want 410: %s", res.StatusCode, body)
	}
	checkError(t, res, body, "cursor_expired")
	// A since within the window still works.
	if got := pageAll(t, h, commitTime.Add(3*time.Hour), 100, false, nil); !slices.Equal(got, []string{"T3", "T4"}) {
		t.Errorf("within the window: %v", got)
	}
}
