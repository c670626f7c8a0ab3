package state

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stockpipe/stock/producer/change"
)

// BenchmarkStateMemory fills the store with products x warehouses rows, as
// a snapshot would, and reports heap bytes per row. Run with
// -benchtime=1x; PRODUCTS x WAREHOUSES of tomorrow's scale is 100,000 x 100.
func BenchmarkStateMemory(b *testing.B) {
	for _, size := range []struct{ products, warehouses int }{{10_000, 20}, {100_000, 100}} {
		b.Run(fmt.Sprintf("%dx%d", size.products, size.warehouses), func(b *testing.B) {
			for range b.N {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				s := fill(size.products, size.warehouses)
				runtime.GC()
				runtime.ReadMemStats(&after)
				rows := s.Rows()
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(rows), "bytes/row")
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
				runtime.KeepAlive(s)
			}
		})
	}
}

func fill(products, warehouses int) *Store {
	s := New()
	at := time.Now()
	for p := 0; p < products; p++ {
		id := fmt.Sprintf("SKU-%06d", p)
		rows := make([]change.Row, warehouses)
		for w := range rows {
			rows[w] = change.Row{ProductID: fmt.Sprintf("SKU-%06d", p), WarehouseID: fmt.Sprintf("WH-%03d", w),
				OnHand: 100, Reserved: 3, LowStockThreshold: 10, Version: 5,
				LastChangeKind: "reserve", LastChangeRef: fmt.Sprintf("r-%d-%d", p, w), UpdatedAt: at}
		}
		s.SetProduct(id, rows)
	}
	return s
}

func TestInterningSharesStrings(t *testing.T) {
	s := fill(2, 3)
	a, b := s.ProductRows("SKU-000000"), s.ProductRows("SKU-000001")
	if a[1].WarehouseID != b[1].WarehouseID || a[1].LastChangeKind != "reserve" {
		t.Fatalf("rows %+v %+v", a[1], b[1])
	}
	if a[0].ProductID != "SKU-000000" || b[2].ProductID != "SKU-000001" || a[2].LastChangeRef != "r-0-2" {
		t.Fatalf("rows lost their values: %+v %+v", a[0], b[2])
	}
}
