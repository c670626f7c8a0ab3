package sweep

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// seeded is a pool on a database of the test's own (a sweeper of make run
// on the shared one must not take the test's reservations), with 2
// products in 2 warehouses.
func seeded(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	db, err := inventorydb.OpenPool(ctx, inventorydb.PoolConfig{URL: testenv.Database(t, "test_sweep"), MaxConns: 4})
	if err != nil {
		t.Fatalf("connecting to the local stack's PostgreSQL (scripts/stack.sh): %v", err)
	}
	t.Cleanup(db.Close)
	if err := inventorydb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.Seed(ctx, db, 2, 2); err != nil {
		t.Fatal(err)
	}
	return db
}

// reserve holds n units of SKU-000001 in WH-01 for ttl.
func reserve(t *testing.T, db inventorydb.Querier, id string, n int, ttl time.Duration) {
	t.Helper()
	if _, err := inventorydb.Reserve(context.Background(), db, inventorydb.ReserveRequest{
		ReservationID: id, ProductID: "SKU-000001", WarehouseID: "WH-01", Quantity: n, TTL: ttl, AllowBackorder: true,
	}); err != nil {
		t.Fatal(err)
	}
}

func reserved(t *testing.T, db inventorydb.Querier) int {
	t.Helper()
	l, err := inventorydb.LoadLevel(context.Background(), db, "SKU-000001", "WH-01")
	if err != nil {
		t.Fatal(err)
	}
	return l.Reserved
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestSweepExpiresOverdueReservations(t *testing.T) {
	ctx := context.Background()
	db := seeded(t)
	before := reserved(t, db)
	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		reserve(t, db, id, 2, time.Millisecond)
	}
	reserve(t, db, "kept", 5, time.Hour)
	time.Sleep(50 * time.Millisecond) // r1..r4 are overdue now

	// r4 is being released or committed by someone else: stock_expire
	// skips it rather than wait, and the gauges say one is left.
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM stock_reservations WHERE reservation_id = 'r4' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.Limit = 2 // r1..r3 take two calls: the sweep drains, not one call per interval
	sw, err := New(cfg, db, slog.New(slog.NewJSONHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	n, err := sw.Sweep(ctx)
	if err != nil || n != 3 {
		t.Fatalf("sweep expired %d, %v; want 3", n, err)
	}
	if got := reserved(t, db); got != before+2+5 {
		t.Errorf("reserved = %d after the sweep, want %d (r4 and kept only)", got, before+2+5)
	}
	if v := value(t, sw.m.expired); v != 3 {
		t.Errorf("reservations_expired_total = %v, want 3", v)
	}
	if c, o := value(t, sw.m.overdue), value(t, sw.m.oldest); c != 1 || o < 0.04 {
		t.Errorf("overdue_reservations %v, oldest_overdue_seconds %v; want 1 left, due 40ms ago or more", c, o)
	}
	if v := value(t, sw.m.lastSuccess); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last_success_timestamp_seconds = %v, want now", v)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The next run takes r4; a second sweep has nothing to do, the
	// reservation not yet due is kept.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sw.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for value(t, sw.m.expired) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("r4 never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	if n, err := sw.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("sweep again expired %d, %v; want 0", n, err)
	}
	if got := reserved(t, db); got != before+5 {
		t.Errorf("reserved = %d, want %d (kept only)", got, before+5)
	}
	if c, o := value(t, sw.m.overdue), value(t, sw.m.oldest); c != 0 || o != 0 {
		t.Errorf("overdue %v, oldest %v with nothing overdue; want 0, 0", c, o)
	}
	r, err := inventorydb.LoadReservation(ctx, db, "r4")
	if err != nil || r.Status != inventorydb.StatusExpired {
		t.Errorf("r4 = %+v, %v; want expired", r, err)
	}
}
