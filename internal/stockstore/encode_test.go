package stockstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
)

// The hand-written encoder must write what encoding/json writes for the
// served view, byte for byte.
func TestAppendDocMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		s    Snapshot
	}{
		{"no warehouses", Snapshot{ProductID: "P", Status: "OUT_OF_STOCK"}},
		{"typical", Snapshot{
			ProductID: "SKU-000042", Position: position.Position{LSN: 0x16B3748, Index: 3},
			OnHand: 310, Reserved: 12, Available: -290, Status: "IN_STOCK",
			Warehouses: []Warehouse{
				{WarehouseID: "WH-01", OnHand: 20, Reserved: 2, Available: 18, Status: "LOW_STOCK", LowStockThreshold: 20},
				{WarehouseID: "WH-02", OnHand: 0, Reserved: 0, Available: -3, Status: "OUT_OF_STOCK", LowStockThreshold: 0},
			},
			CommitTime: time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.FixedZone("X", -7200)),
		}},
		{"odd strings", Snapshot{
			ProductID: "a\"b\\c<d>&e\n\x01é\xff", Status: "ü",
			Warehouses: []Warehouse{{WarehouseID: "\u2028"}},
			Position:   position.Position{LSN: 1<<64 - 1, Index: 1<<32 - 1},
			CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.s.Product())
			if err != nil {
				t.Fatal(err)
			}
			if got := appendDoc(nil, &tt.s); string(got) != string(want) {
				t.Errorf("appendDoc\n got %s\nwant %s", got, want)
			}
		})
	}
}
