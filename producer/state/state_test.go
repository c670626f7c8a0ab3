package state

import (
	"slices"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/schemas"
)

func row(p, w string, onHand, reserved, safety, threshold int32) change.Row {
	return change.Row{ProductID: p, WarehouseID: w, OnHand: onHand, Reserved: reserved, SafetyStock: safety, LowStockThreshold: threshold}
}

func TestLevelTotalsAndStatus(t *testing.T) {
	rows := []change.Row{row("P", "WH-01", 20, 2, 0, 20), row("P", "WH-02", 3, 5, 1, 10)}
	pos := position.Position{LSN: 100, Index: 2}
	l := Level("P", rows, pos, 7, time.Unix(0, 0), false)
	if l.OnHand != 23 || l.Reserved != 7 || l.SafetyStock != 1 || l.Available != 15 {
		t.Fatalf("totals %+v", l)
	}
	// Oversold stays visible: 3 - 5 - 1 = -3.
	if l.Warehouses[1].Available != -3 || l.Warehouses[1].Status != schemas.StatusOutOfStock {
		t.Fatalf("WH-02 = %+v, want available -3 OUT_OF_STOCK", l.Warehouses[1])
	}
	if l.Warehouses[0].Status != schemas.StatusLowStock || l.Status != schemas.StatusLowStock {
		t.Fatalf("statuses wh=%s total=%s, want LOW_STOCK (15 <= 30)", l.Warehouses[0].Status, l.Status)
	}
	if l.Position.Value() != pos {
		t.Fatalf("position %v", l.Position.Value())
	}
	if Level("P", nil, pos, 7, time.Unix(0, 0), false) != nil {
		t.Fatal("a product without rows must be a tombstone (nil)")
	}
	back := FromLevel(l)
	if len(back) != 2 || back[1].OnHand != 3 || back[1].Reserved != 5 || back[0].LowStockThreshold != 20 {
		t.Fatalf("FromLevel = %+v", back)
	}
}

func TestAlerts(t *testing.T) {
	rows := func(onHand int32) []change.Row { return []change.Row{row("P", "WH-01", onHand, 0, 0, 10)} }
	level := func(onHand int32) *schemas.StockLevel {
		return Level("P", rows(onHand), position.Position{LSN: 1}, 1, time.Unix(0, 0), false)
	}
	for _, tc := range []struct {
		name       string
		from, to   int32
		wantKinds  []string
		wantScopes int
	}{
		{"in to low", 50, 5, []string{schemas.AlertLowStock, schemas.AlertLowStock}, 2},
		{"low to out", 5, 0, []string{schemas.AlertOutOfStock, schemas.AlertOutOfStock}, 2},
		{"out to in", 0, 50, []string{schemas.AlertBackInStock, schemas.AlertBackInStock}, 2},
		{"in to in", 50, 40, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Alerts(StatusesOf(rows(tc.from)), level(tc.to))
			if len(got) != len(tc.wantKinds) {
				t.Fatalf("alerts %+v, want kinds %v", got, tc.wantKinds)
			}
			for i, a := range got {
				if a.Kind != tc.wantKinds[i] {
					t.Fatalf("alert %d kind %s, want %s", i, a.Kind, tc.wantKinds[i])
				}
			}
			if len(got) == 2 && (got[0].WarehouseID == nil || *got[0].WarehouseID != "WH-01" || got[1].WarehouseID != nil) {
				t.Fatalf("want one warehouse alert then one product-total alert, got %+v", got)
			}
		})
	}
	if Alerts(nil, level(0)) != nil {
		t.Fatal("a new product is not a crossing")
	}
}

// Rows added or removed in the transaction are no crossing of their own;
// the rows on both sides are matched by warehouse.
func TestAlertsAcrossRowsAddedAndRemoved(t *testing.T) {
	before := []change.Row{row("P", "WH-01", 5, 0, 0, 10), row("P", "WH-03", 50, 0, 0, 10)} // LOW, IN; product IN (55 > 20)
	after := []change.Row{row("P", "WH-02", 5, 0, 0, 10), row("P", "WH-03", 0, 0, 0, 10)}   // new LOW, OUT; product LOW (5 <= 20)
	got := Alerts(StatusesOf(before), Level("P", after, position.Position{LSN: 2}, 2, time.Unix(0, 0), false))
	if len(got) != 2 {
		t.Fatalf("alerts %+v, want WH-03 out of stock and the product low", got)
	}
	if got[0].WarehouseID == nil || *got[0].WarehouseID != "WH-03" || got[0].Kind != schemas.AlertOutOfStock || got[0].PreviousStatus != schemas.StatusInStock {
		t.Fatalf("first alert %+v, want WH-03 IN_STOCK -> OUT_OF_STOCK", got[0])
	}
	if got[1].WarehouseID != nil || got[1].Kind != schemas.AlertLowStock || got[1].PreviousStatus != schemas.StatusInStock {
		t.Fatalf("second alert %+v, want the product IN_STOCK -> LOW_STOCK", got[1])
	}
}

// Every row keeps its own status, the first and the last included, whatever
// its warehouse id (an empty one too): the statuses are packed, and a row
// read wrongly from them would cross where nothing did.
func TestAlertsMatchEveryRow(t *testing.T) {
	ids := []string{"", "WH-01", "WH-02", "WH-10"}
	rows := func(onHand ...int32) []change.Row {
		out := make([]change.Row, len(ids))
		for i, id := range ids {
			out[i] = row("P", id, onHand[i], 0, 0, 10)
		}
		return out
	}
	before := StatusesOf(rows(50, 5, 0, 50)) // IN, LOW, OUT, IN; product IN (105 > 40)
	got := Alerts(before, Level("P", rows(0, 5, 0, 5) /* product LOW: 10 <= 40 */, position.Position{LSN: 2}, 2, time.Unix(0, 0), false))
	var scopes []string
	for _, a := range got {
		if a.WarehouseID == nil {
			scopes = append(scopes, "total:"+a.PreviousStatus+">"+a.Status)
			continue
		}
		scopes = append(scopes, *a.WarehouseID+":"+a.PreviousStatus+">"+a.Status)
	}
	want := []string{":IN_STOCK>OUT_OF_STOCK", "WH-10:IN_STOCK>LOW_STOCK", "total:IN_STOCK>LOW_STOCK"}
	if !slices.Equal(scopes, want) {
		t.Fatalf("alerts %v, want %v", scopes, want)
	}
}
