package cdc

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestIdleDatabaseKeepsConfirming leaves the inventory untouched for
// minutes (STOCK_IDLE_TEST_DURATION, 3m by default) while another table of
// the database is written: with the default heartbeat and status intervals
// the slot's confirmed LSN must keep passing those writes, so the slot never
// holds WAL back on a database busy only elsewhere.
func TestIdleDatabaseKeepsConfirming(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for minutes")
	}
	t.Parallel()
	duration := 3 * time.Minute
	if v := os.Getenv("STOCK_IDLE_TEST_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("STOCK_IDLE_TEST_DURATION: %v", err)
		}
		duration = d
	}
	h := newHarness(t)
	h.cfg.HeartbeatInterval, h.cfg.StatusInterval = 0, 0 // the production defaults
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1')`)
	h.exec(`SELECT stock_receive('P1', 'W1', 10, 'seed')`)
	h.exec(`CREATE TABLE unrelated (id serial PRIMARY KEY, note text)`)
	h.start()
	defer h.stop()
	h.waitLevel("snapshot", "P1", "W1=10")

	// A write to the unrelated table must be confirmed past within a few
	// heartbeats; without the heartbeat it never would be.
	heartbeat := 10 * time.Second
	bound := 4*heartbeat + 10*time.Second
	type sample struct {
		at     time.Time
		walLSN string
	}
	ctx := context.Background()
	var pending []sample
	advanced := 0
	end := time.Now().Add(duration)
	for time.Now().Before(end) || len(pending) > 0 {
		if time.Now().Before(end) {
			h.exec(`INSERT INTO unrelated (note) SELECT 'idle' FROM generate_series(1, 1000)`)
			var lsn string
			if err := h.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
				t.Fatal(err)
			}
			pending = append(pending, sample{at: time.Now(), walLSN: lsn})
		}
		var confirmed string
		if err := h.conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, h.cfg.Slot).Scan(&confirmed); err != nil {
			t.Fatal(err)
		}
		keep := pending[:0]
		for _, s := range pending {
			var passed bool
			if err := h.conn.QueryRow(ctx, `SELECT $1::pg_lsn >= $2::pg_lsn`, confirmed, s.walLSN).Scan(&passed); err != nil {
				t.Fatal(err)
			}
			switch {
			case passed:
				advanced++
			case time.Since(s.at) > bound:
				t.Fatalf("confirmed LSN %s still before %s, written %s ago", confirmed, s.walLSN, time.Since(s.at).Round(time.Second))
			default:
				keep = append(keep, s)
			}
		}
		pending = keep
		time.Sleep(5 * time.Second)
	}
	t.Logf("confirmed LSN passed %d unrelated writes over %s", advanced, duration)
}
