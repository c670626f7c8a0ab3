package cdc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// cancelOn cancels a run's context when the run logs msg, to cut it short
// at a chosen point.
type cancelOn struct {
	slog.Handler
	msg    string
	cancel context.CancelFunc
}

func (c cancelOn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.cancel()
	}
	return c.Handler.Handle(ctx, r)
}

func (c cancelOn) WithAttrs(a []slog.Attr) slog.Handler {
	return cancelOn{Handler: c.Handler.WithAttrs(a), msg: c.msg, cancel: c.cancel}
}

func (c cancelOn) WithGroup(name string) slog.Handler {
	return cancelOn{Handler: c.Handler.WithGroup(name), msg: c.msg, cancel: c.cancel}
}

// A slot that disappears (dropped, or gone after a failover) while Kafka
// holds a finished snapshot is replaced by a new slot and snapshot. If the
// run that created the new slot dies before the snapshot is written, the
// next run must take the snapshot again: resuming from the new slot would
// silently skip every change made while no slot captured them.
func TestRepairSnapshotCutShortIsTakenAgain(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1'), ('W2','W2')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1'), ('P2','P2')`)
	for _, p := range []string{"P1", "P2"} {
		h.exec(`SELECT stock_receive($1, 'W1', 10, 'seed')`, p)
		h.exec(`SELECT stock_receive($1, 'W2', 20, 'seed')`, p)
	}
	h.start()
	h.eventually("first snapshot", func() string {
		ls := h.levels()
		for _, p := range []string{"P1", "P2"} {
			if got := warehouses(ls[p]); got != "W1=10 W2=20" {
				return fmt.Sprintf("%s = %s", p, got)
			}
		}
		return ""
	})
	h.stop()

	// The slot goes away; changes happen that no slot sees.
	h.eventually("slot dropped", func() string {
		if _, err := h.conn.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, h.cfg.Slot); err != nil {
			return err.Error()
		}
		return ""
	})
	h.exec(`DELETE FROM inventory_levels WHERE product_id = 'P1'`)
	h.exec(`SELECT stock_adjust('P2', 'W1', 5, 'unseen', 'unseen')`)

	// A run creates the new slot and dies before writing the snapshot.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(cancelOn{Handler: slog.NewJSONHandler(io.Discard, nil), msg: "slot created", cancel: cancel})
	p, err := New(h.cfg, log, NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err == nil {
		t.Fatal("the run cut short after creating its slot returned no error")
	}
	var slots int
	if err := h.conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, h.cfg.Slot).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 1 {
		t.Fatalf("%d slots named %s after the cut-short run, want the one it created", slots, h.cfg.Slot)
	}

	// The next run finds a healthy-looking slot; Kafka must still be
	// brought in line with PostgreSQL.
	h.start()
	defer h.stop()
	h.eventually("repair snapshot", func() string {
		ls := h.levels()
		if l, ok := ls["P1"]; !ok || l != nil {
			return "P1 (deleted while no slot existed) = " + warehouses(l)
		}
		if got := warehouses(ls["P2"]); got != "W1=15 W2=20" {
			return "P2 (adjusted while no slot existed) = " + got
		}
		return ""
	})
}

// A second producer started on the same slot while one runs (a standby, an
// overlapping deploy) gives up with ErrSlotInUse and leaves the running one
// alone: it must not fence the running one's Kafka transactions first.
func TestSecondInstanceLeavesTheRunningOneAlone(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1')`)
	h.exec(`SELECT stock_receive('P1', 'W1', 10, 'seed')`)
	h.start()
	defer h.stop()
	h.waitLevel("snapshot", "P1", "W1=10")

	h.secondInstanceGivesUp("second instance")

	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'after', 'after')`)
	h.waitLevel("change after the second instance gave up", "P1", "W1=11")
	if n := h.runs.Load(); n != 1 {
		t.Fatalf("the running producer started %d times, want 1 (it was fenced by the second instance)", n)
	}
}

// pauseOn holds a run at the log line msg until release is closed, after
// closing reached.
type pauseOn struct {
	slog.Handler
	msg              string
	reached, release chan struct{}
}

func (p pauseOn) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == p.msg {
		close(p.reached)
		<-p.release
	}
	return p.Handler.Handle(ctx, r)
}

func (p pauseOn) WithAttrs(a []slog.Attr) slog.Handler {
	return pauseOn{Handler: p.Handler.WithAttrs(a), msg: p.msg, reached: p.reached, release: p.release}
}

func (p pauseOn) WithGroup(name string) slog.Handler {
	return pauseOn{Handler: p.Handler.WithGroup(name), msg: p.msg, reached: p.reached, release: p.release}
}

// While the first producer reads its snapshot its new slot shows inactive
// (PostgreSQL releases a slot once created): a second instance started
// then must still give up, without fencing the first.
func TestSecondInstanceRefusedDuringSnapshot(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1')`)
	h.exec(`SELECT stock_receive('P1', 'W1', 10, 'seed')`)

	pause := pauseOn{Handler: slog.NewJSONHandler(io.Discard, nil), msg: "slot created", reached: make(chan struct{}), release: make(chan struct{})}
	first, err := New(h.cfg, slog.New(pause), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	select {
	case <-pause.reached:
	case err := <-done:
		t.Fatalf("first instance ended before creating its slot: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("first instance did not create its slot")
	}
	var active bool
	if err := h.conn.QueryRow(context.Background(), `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, h.cfg.Slot).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active {
		t.Log("the slot shows active before streaming: this PostgreSQL keeps it acquired")
	}

	h.secondInstanceGivesUp("second instance during the snapshot")

	close(pause.release)
	h.waitLevel("snapshot of the first instance", "P1", "W1=10")
	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'after', 'after')`)
	h.waitLevel("change streamed by the first instance", "P1", "W1=11")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first instance: %v (fenced by the second?)", err)
	}
}

// secondInstanceGivesUp runs another producer of the harness's slot, which
// must end with ErrSlotInUse.
func (h *harness) secondInstanceGivesUp(what string) {
	h.t.Helper()
	second, err := New(h.cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := second.Run(ctx); !errors.Is(err, ErrSlotInUse) {
		h.t.Fatalf("%s: %v, want ErrSlotInUse", what, err)
	}
}
