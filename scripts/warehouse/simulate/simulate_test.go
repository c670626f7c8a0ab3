package simulate

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// TestGroupedTransactionsReportWrites runs the simulator with grouped
// source transactions on a corner of the demo data and checks what a
// listener relies on: every reported write is a committed row stamped with
// the kind and ref reported, and grouping neither fails nor deadlocks.
func TestGroupedTransactionsReportWrites(t *testing.T) {
	ctx := context.Background()
	db, err := inventorydb.OpenPool(ctx, inventorydb.PoolConfig{URL: testenv.PostgresURL(), MaxConns: 12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := inventorydb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	// The first 20 products in 2 warehouses: the demo seed makes them anyway.
	if err := inventorydb.Seed(ctx, db, 20, 2); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var writes []Write
	sim, err := New(Config{
		Rate: 400, Duration: 1500 * time.Millisecond, Products: 20, Warehouses: 2, Workers: 8,
		TxMaxCalls: 8, HoldMax: 300 * time.Millisecond,
		OnWrite: func(w Write) {
			mu.Lock()
			writes = append(writes, w)
			mu.Unlock()
		},
	}, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if sim.stats.txs() == 0 {
		t.Fatal("no grouped transaction committed")
	}
	if n := sim.stats.txsFailed(); n != 0 {
		t.Errorf("%d grouped transactions failed: %s", n, sim.stats.lastError())
	}
	for kind, c := range sim.Totals() {
		if c.Failed != 0 {
			t.Errorf("%s: %d failed calls: %s", kind, c.Failed, sim.stats.lastError())
		}
	}
	if len(writes) < 100 {
		t.Fatalf("heard of %d writes at 400/s for 1.5 s, want at least 100", len(writes))
	}
	// Each reported write is in the table as reported (unless a later write
	// to the same row has restamped it, so look for the last one per row).
	var found int
	for _, w := range writes {
		if w.At.IsZero() || w.Ref == "" || w.ProductID == "" {
			t.Fatalf("incomplete write %+v", w)
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM inventory_levels
			WHERE product_id = $1 AND last_change_kind = $2 AND last_change_ref = $3`, w.ProductID, w.Kind, w.Ref).Scan(&n); err != nil {
			t.Fatal(err)
		}
		found += min(n, 1)
	}
	if found == 0 {
		t.Error("no reported write is stamped on a row")
	}
}
