package statestore

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stockpipe/stock/producer/change"
)

func benchRows(p, warehouses int, at time.Time) []change.Row {
	rows := make([]change.Row, warehouses)
	id := fmt.Sprintf("SKU-%06d", p)
	for w := range rows {
		rows[w] = change.Row{ProductID: id, WarehouseID: fmt.Sprintf("WH-%03d", w),
			OnHand: 100, Reserved: 3, LowStockThreshold: 10, Version: 5,
			LastChangeKind: "reserve", LastChangeRef: fmt.Sprintf("r-%d-%d", p, w), UpdatedAt: at}
	}
	return rows
}

// BenchmarkLoad writes products x warehouses rows through a Loader, as a
// snapshot or a rebuild does, and reports rows per second, bytes on disk
// per row and the heap the load kept. Run with -benchtime=1x.
func BenchmarkLoad(b *testing.B) {
	for _, size := range []struct{ products, warehouses int }{{10_000, 20}, {100_000, 100}} {
		b.Run(fmt.Sprintf("%dx%d", size.products, size.warehouses), func(b *testing.B) {
			for range b.N {
				s := openTest(b, b.TempDir())
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				start := time.Now()
				ld := s.NewLoader("bench")
				at := time.Now()
				for p := 0; p < size.products; p++ {
					if err := ld.SetProduct(fmt.Sprintf("SKU-%06d", p), benchRows(p, size.warehouses, at), 0); err != nil {
						b.Fatal(err)
					}
				}
				if err := ld.Flush(); err != nil {
					b.Fatal(err)
				}
				n, np, err := s.Count()
				if err != nil || n != int64(size.products*size.warehouses) {
					b.Fatalf("counted %d rows, %v", n, err)
				}
				if err := ld.Finish("mark", n, np); err != nil {
					b.Fatal(err)
				}
				ld.Close()
				took := time.Since(start)
				if err := s.db.Flush(); err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				rows := float64(size.products * size.warehouses)
				b.ReportMetric(rows/took.Seconds(), "rows/s")
				b.ReportMetric(float64(s.DiskBytes())/rows, "disk-bytes/row")
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MiB")

				// Reading every product back through a view.
				start = time.Now()
				v := s.NewView(64<<20, n, np)
				for p := 0; p < size.products; p++ {
					rows, err := v.ProductRows(fmt.Sprintf("SKU-%06d", p))
					if err != nil || len(rows) != size.warehouses {
						b.Fatalf("product %d: %d rows, %v", p, len(rows), err)
					}
				}
				b.ReportMetric(float64(size.products)/time.Since(start).Seconds(), "products-read/s")
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
