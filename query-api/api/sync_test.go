package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

type changesPage struct {
	Changes []struct {
		ProductID string          `json:"product_id"`
		Position  string          `json:"position"`
		Deleted   bool            `json:"deleted"`
		Product   json.RawMessage `json:"product"`
	} `json:"changes"`
	NextCursor string `json:"next_cursor"`
}

func TestChangesFollowsACursor(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	// newAPIWith applied SKU-1, SKU-2, SKU-3 and SKU-3's tombstone.
	var seen []string
	deleted := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		res, body := do(t, h, "GET", "/v1/stock/changes?limit=2&cursor="+cursor, "")
		if res.StatusCode != 200 {
			t.Fatalf("page %d: status %d: %s", page, res.StatusCode, body)
		}
		p := decode[changesPage](t, body)
		for _, c := range p.Changes {
			seen = append(seen, c.ProductID)
			deleted[c.ProductID] = c.Deleted
			if c.Deleted != (string(c.Product) == "null") {
				t.Errorf("%s: deleted=%v with product %s", c.ProductID, c.Deleted, c.Product)
			}
		}
		cursor = p.NextCursor
		if len(p.Changes) < 2 {
			break
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"SKU-1", "SKU-2", "SKU-3"}) || !deleted["SKU-3"] || deleted["SKU-1"] {
		t.Fatalf("changes %v deleted %v: want each product once, SKU-3 deleted", seen, deleted)
	}
	// Caught up: the same cursor again gives nothing and itself.
	_, body := do(t, h, "GET", "/v1/stock/changes?cursor="+cursor, "")
	if p := decode[changesPage](t, body); len(p.Changes) != 0 || p.NextCursor != cursor {
		t.Errorf("caught up: %s", body)
	}
	// A new change shows up after the cursor, with its document.
	apply(t, st, snapshot("SKU-2", 77, position.Position{LSN: 0x16B3750, Index: 1}))
	_, body = do(t, h, "GET", "/v1/stock/changes?cursor="+cursor, "")
	p := decode[changesPage](t, body)
	if len(p.Changes) != 1 || p.Changes[0].ProductID != "SKU-2" || p.Changes[0].Position != "0/16B3750:1" {
		t.Fatalf("after a change: %s", body)
	}
	var doc stockstore.Product
	if err := json.Unmarshal(p.Changes[0].Product, &doc); err != nil || doc.OnHand != 77 {
		t.Errorf("changed product %s: %v", p.Changes[0].Product, err)
	}
}

func TestChangesExpiredCursorIsGone(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	_, body := do(t, h, "GET", "/v1/stock/changes?limit=1", "")
	old := decode[changesPage](t, body).NextCursor
	for i := range 5 {
		apply(t, st, snapshot(fmt.Sprintf("N-%d", i), 1, position.Position{LSN: 0x20000000, Index: uint32(i + 1)}))
	}
	if _, err := st.TrimChanges(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	res, body := do(t, h, "GET", "/v1/stock/changes?cursor="+old, "")
	if res.StatusCode != 410 {
		t.Fatalf("status %d, want 410: %s", res.StatusCode, body)
	}
	checkError(t, res, body, "cursor_expired")
	var e struct {
		Error struct {
			Details struct {
				Resync struct {
					Cursor string `json:"cursor"`
				} `json:"resync"`
			} `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Details.Resync.Cursor == "" {
		t.Fatalf("410 without a resync cursor: %s", body)
	}
	// The resync cursor works and is the head: nothing after it yet.
	res, body = do(t, h, "GET", "/v1/stock/changes?cursor="+e.Error.Details.Resync.Cursor, "")
	if p := decode[changesPage](t, body); res.StatusCode != 200 || len(p.Changes) != 0 {
		t.Errorf("from the resync cursor: %d %s", res.StatusCode, body)
	}
	_, body = do(t, h, "GET", "/v1/stock/changes/head", "")
	if want := `{"cursor":"` + e.Error.Details.Resync.Cursor + `"}`; string(body) != want+"\n" {
		t.Errorf("head %s, want %s", body, want)
	}
}

func TestLowStockPages(t *testing.T) {
	h, st := newAPIWith(t, api.Deps{})
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("L-%d", i)
		apply(t, st, twoWarehouses(id, position.Position{LSN: 0x30000000, Index: uint32(i + 1)}))
		want = append(want, id)
	}
	var got []string
	cursor := ""
	for page := 0; page < 10; page++ {
		res, body := do(t, h, "GET", "/v1/warehouses/WH-02/low-stock?limit=2&cursor="+cursor, "")
		if res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		p := decode[struct {
			WarehouseID string         `json:"warehouse_id"`
			Products    []warehouseRow `json:"products"`
			NextCursor  *string        `json:"next_cursor"`
		}](t, body)
		for _, r := range p.Products {
			if r.Status != "LOW_STOCK" || r.OnHand != 4 {
				t.Errorf("row %+v", r)
			}
			got = append(got, r.ProductID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("low stock in WH-02 = %v, want %v", got, want)
	}
	// WH-01 rows are plentiful: nothing low there.
	_, body := do(t, h, "GET", "/v1/warehouses/WH-01/low-stock", "")
	if string(body) != `{"warehouse_id":"WH-01","products":[],"next_cursor":null}` {
		t.Errorf("WH-01 low stock: %s", body)
	}
}
