package stockstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
)

// wideSnapshot has 20 warehouses, the size of the demo data.
func wideSnapshot(id string, p position.Position) stockstore.Snapshot {
	s := stockstore.Snapshot{ProductID: id, Position: p, Status: "IN_STOCK", CommitTime: commitTime}
	for w := range 20 {
		s.Warehouses = append(s.Warehouses, stockstore.Warehouse{
			WarehouseID: fmt.Sprintf("WH-%02d", w), OnHand: 100, Reserved: 3, Available: 97,
			Status: "IN_STOCK", LowStockThreshold: 10,
		})
		s.OnHand += 100
		s.Reserved += 3
		s.Available += 97
	}
	return s
}

// BenchmarkApply reports product snapshots applied per second, in batches.
func BenchmarkApply(b *testing.B) {
	for _, batch := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			st, _ := storetest.New(b)
			ctx := context.Background()
			snaps := make([]stockstore.Snapshot, batch)
			lsn := uint64(1)
			b.ResetTimer()
			for n := 0; n < b.N; n += batch {
				for i := range snaps {
					snaps[i] = wideSnapshot(fmt.Sprintf("SKU-%06d", (n+i)%10000), position.Position{LSN: lsn, Index: uint32(i + 1)})
				}
				lsn++
				if _, err := st.Apply(ctx, snaps); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "snapshots/s")
		})
	}
}

func BenchmarkGet(b *testing.B) {
	st, _ := storetest.New(b)
	ctx := context.Background()
	ids := make([]string, 1000)
	snaps := make([]stockstore.Snapshot, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("SKU-%06d", i)
		snaps[i] = wideSnapshot(ids[i], position.Position{LSN: 1, Index: uint32(i + 1)})
	}
	if _, err := st.Apply(ctx, snaps); err != nil {
		b.Fatal(err)
	}
	b.Run("one", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := st.GetJSON(ctx, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("many=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := st.GetManyJSON(ctx, ids[:n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
