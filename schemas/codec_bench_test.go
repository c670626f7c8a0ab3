package schemas

import (
	"fmt"
	"testing"
	"time"
)

// The producer encodes one stock.levels.v1 value per touched product per
// source transaction.
func BenchmarkEncodeLevel(b *testing.B) {
	l := &StockLevel{ProductID: "SKU-000042", Status: StatusInStock, Available: 1940, CommitTime: time.Unix(1, 0).UTC()}
	for i := range 20 {
		l.Warehouses = append(l.Warehouses, WarehouseStock{
			WarehouseID: fmt.Sprintf("WH-%02d", i+1), OnHand: 100, Reserved: 3, Available: 97,
			LowStockThreshold: 20, Status: StatusInStock, Version: 7, LastChangeKind: "reserve",
			LastChangeRef: "order-123456", UpdatedAt: time.Unix(1, 0).UTC(),
		})
	}
	var c Codec
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.EncodeLevel(l); err != nil {
			b.Fatal(err)
		}
	}
}
