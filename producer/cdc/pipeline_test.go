package cdc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/schemas"
)

// ownDatabase gives a test a migrated database of its own, so it may
// TRUNCATE or rewrite keys of inventory_levels without touching anyone else.
func ownDatabase(t *testing.T, name string) (url string, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url = testenv.Database(t, name)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if err := inventorydb.Migrate(ctx, conn); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return url, conn
}

type harness struct {
	t       *testing.T
	metrics *Metrics
	cfg     Config
	conn    *pgx.Conn
	cancel  context.CancelFunc
	done    chan error
	runs    atomic.Int32 // runs started, restarts included
}

func newHarness(t *testing.T) *harness {
	name := testenv.Name(t, "cdc")
	url, conn := ownDatabase(t, "cdc")
	cfg := Config{
		PostgresURL: url, Slot: name, Publication: name, Kafka: kafkaconn.Config{Brokers: testenv.KafkaBrokers()},
		LevelsTopic: name + ".levels", ChangesTopic: name + ".changes", AlertsTopic: name + ".alerts",
		CheckpointTopic: name + ".checkpoints", Partitions: 2,
		HeartbeatInterval: 200 * time.Millisecond, StatusInterval: 100 * time.Millisecond,
		// Restart at a steady pace: the tests wait for a restart within
		// their deadlines, never for the backoff to grow.
		RestartMin: 500 * time.Millisecond, RestartMax: 500 * time.Millisecond,
		StateDir: t.TempDir(),
	}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
		if err != nil {
			return
		}
		defer cl.Close()
		_, _ = kadm.NewClient(cl).DeleteTopics(context.Background(), cfg.LevelsTopic, cfg.ChangesTopic, cfg.AlertsTopic, cfg.CheckpointTopic)
	})
	return &harness{t: t, cfg: cfg, conn: conn}
}

func (h *harness) start() {
	h.t.Helper()
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	if h.metrics == nil {
		h.metrics = NewMetrics(prometheus.NewRegistry())
	}
	p, err := New(h.cfg, slog.New(slog.NewJSONHandler(out, nil)), h.metrics)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	// As the producer runs it: a failed run starts over from what Kafka
	// holds.
	go func() {
		h.done <- p.supervise(ctx, func(ctx context.Context) error {
			h.runs.Add(1)
			err := p.Run(ctx)
			if err != nil && ctx.Err() == nil {
				h.t.Logf("pipeline run failed: %v", err)
			}
			return err
		})
	}()
}

func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("pipeline: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("pipeline did not stop")
	}
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.conn.Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
}

func (h *harness) records(topic string) []*kgo.Record {
	h.t.Helper()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts, err := h.cfg.Kafka.Opts()
	if err != nil {
		h.t.Fatal(err)
	}
	err = sink.ReadTopic(ctx, opts, topic, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// levels returns the last level of every product (nil for a tombstone).
func (h *harness) levels() map[string]*schemas.StockLevel {
	h.t.Helper()
	last := map[string]*schemas.StockLevel{}
	for _, r := range h.records(h.cfg.LevelsTopic) {
		if !r.Attrs.IsTransactional() || schemas.CheckID(string(r.Key)) != nil {
			continue // not the producer's (trust_test.go writes such)
		}
		if r.Value == nil {
			last[string(r.Key)] = nil
			continue
		}
		l, err := schemas.DecodeLevel(r.Value)
		if err != nil {
			if !strings.HasPrefix(string(headerOf(r, schemas.HeaderSource)), schemas.SourcePrefix) || strings.HasPrefix(h.t.Name(), "TestStray") {
				continue // a stranger's transaction in trust_test.go
			}
			h.t.Fatal(err)
		}
		if string(r.Key) != l.ProductID {
			h.t.Fatalf("record key %q carries product %q", r.Key, l.ProductID)
		}
		if !strings.HasPrefix(string(headerOf(r, schemas.HeaderSource)), schemas.SourcePrefix) {
			continue // a stranger's transaction in trust_test.go
		}
		if err := schemas.CheckLevel(string(r.Key), l); err != nil {
			if strings.HasPrefix(h.t.Name(), "TestStray") {
				continue // written as the producer by trust_test.go
			}
			h.t.Fatalf("the producer wrote a level its readers refuse: %v", err)
		}
		last[l.ProductID] = l
	}
	return last
}

// eventually polls check until it returns "" or the deadline passes.
func (h *harness) eventually(what string, check func() string) {
	h.t.Helper()
	testenv.Eventually(h.t, 30*time.Second, what, check)
}

// waitLevel waits until the last level of product in Kafka has the
// warehouse quantities want (as warehouses prints them).
func (h *harness) waitLevel(what, product, want string) {
	h.t.Helper()
	h.eventually(what, func() string {
		if got := warehouses(h.levels()[product]); got != want {
			return product + " = " + got
		}
		return ""
	})
}

func warehouses(l *schemas.StockLevel) string {
	if l == nil {
		return "tombstone"
	}
	var b strings.Builder
	for _, w := range l.Warehouses {
		fmt.Fprintf(&b, "%s=%d ", w.WarehouseID, w.OnHand)
	}
	return strings.TrimSpace(b.String())
}

func TestPipelineOddTransactions(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1'), ('W2','W2'), ('W3','W3')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1'), ('P2','P2'), ('P3','P3')`)
	for _, p := range []string{"P1", "P2", "P3"} {
		h.exec(`SELECT stock_receive($1, 'W1', 10, 'seed')`, p)
		h.exec(`SELECT stock_receive($1, 'W2', 20, 'seed')`, p)
	}
	h.exec(`CREATE TABLE unrelated (id serial PRIMARY KEY, note text)`)
	h.start()

	h.eventually("snapshot", func() string {
		ls := h.levels()
		for _, p := range []string{"P1", "P2", "P3"} {
			if got := warehouses(ls[p]); got != "W1=10 W2=20" {
				return fmt.Sprintf("%s = %s", p, got)
			}
			if !ls[p].Snapshot {
				return p + " not marked as a snapshot read"
			}
		}
		return ""
	})

	t.Run("product deleted from every warehouse becomes a tombstone", func(t *testing.T) {
		h.exec(`DELETE FROM inventory_levels WHERE product_id = 'P1'`)
		h.eventually("tombstone", func() string {
			if l, ok := h.levels()["P1"]; !ok || l != nil {
				return "P1 = " + warehouses(l)
			}
			return ""
		})
		var deletes int
		for _, r := range h.records(h.cfg.ChangesTopic) {
			c, err := schemas.DecodeChange(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if c.Op == schemas.OpDelete && c.ProductID == "P1" {
				if c.Before == nil || c.After != nil {
					t.Fatalf("delete change %+v: want a before image and no after", c)
				}
				deletes++
			}
		}
		if deletes != 2 {
			t.Fatalf("%d delete changes for P1, want 2", deletes)
		}
	})

	t.Run("batches are lz4 unless compression would make them larger", func(t *testing.T) {
		// franz-go sends a batch uncompressed when the codec does not
		// shrink it (a single small record).
		var lz4 int
		for _, topic := range []string{h.cfg.LevelsTopic, h.cfg.ChangesTopic} {
			for _, r := range h.records(topic) {
				switch c := r.Attrs.CompressionType(); c {
				case 3:
					lz4++
				case 0:
				default:
					t.Fatalf("%s offset %d: compression type %d, want lz4 (3) or none", topic, r.Offset, c)
				}
			}
		}
		if lz4 == 0 {
			t.Fatal("no lz4 batch in the levels and changes topics")
		}
	})

	t.Run("primary key change moves the row", func(t *testing.T) {
		h.exec(`UPDATE inventory_levels SET warehouse_id = 'W3', version = version + 1 WHERE product_id = 'P2' AND warehouse_id = 'W2'`)
		h.waitLevel("key change", "P2", "W1=10 W3=20")
	})

	t.Run("rows of other tables emit nothing", func(t *testing.T) {
		before := len(h.records(h.cfg.ChangesTopic))
		h.exec(`INSERT INTO unrelated (note) SELECT 'x' FROM generate_series(1, 100)`)
		h.exec(`SELECT stock_adjust('P3', 'W1', 1, 'marker', 'marker')`)
		h.waitLevel("marker", "P3", "W1=11 W2=20")
		if after := len(h.records(h.cfg.ChangesTopic)); after != before+1 {
			t.Fatalf("changes grew by %d, want 1 (the marker adjust only)", after-before)
		}
	})

	t.Run("state survives a restart", func(t *testing.T) {
		h.stop()
		h.exec(`SELECT stock_adjust('P3', 'W2', -5, 'after restart', 'restart')`)
		h.start()
		// The level must carry both warehouses: W1 comes from the state
		// rebuilt out of Kafka, not from this change.
		h.waitLevel("after restart", "P3", "W1=11 W2=15")
	})

	t.Run("resnapshot writes current state again without stopping the stream", func(t *testing.T) {
		count := func(id string) (n int, last *schemas.StockLevel) {
			for _, r := range h.records(h.cfg.LevelsTopic) {
				if string(r.Key) == id && r.Value != nil {
					l, err := schemas.DecodeLevel(r.Value)
					if err != nil {
						t.Fatal(err)
					}
					n, last = n+1, l
				}
			}
			return n, last
		}
		n3, before := count("P3")
		n2, _ := count("P2")
		// A malformed request is skipped, never fatal.
		h.exec(`SELECT pg_logical_emit_message(true, 'stock.resnapshot', 'not json')`)
		if _, err := RequestResnapshot(context.Background(), h.cfg.PostgresURL, []string{"P3"}); err != nil {
			t.Fatal(err)
		}
		h.eventually("resnapshot of P3", func() string {
			if n, _ := count("P3"); n != n3+1 {
				return fmt.Sprintf("P3 has %d levels, want %d", n, n3+1)
			}
			return ""
		})
		_, after := count("P3")
		if warehouses(after) != warehouses(before) || !after.Position.Value().After(before.Position.Value()) {
			t.Fatalf("resnapshot level %s at %s; want %s at a newer position than %s",
				warehouses(after), after.Position.Value(), warehouses(before), before.Position.Value())
		}
		if n, _ := count("P2"); n != n2 {
			t.Fatalf("P2 was not requested but got %d new levels", n-n2)
		}
		if _, err := RequestResnapshot(context.Background(), h.cfg.PostgresURL, nil); err != nil {
			t.Fatal(err)
		}
		h.eventually("resnapshot of all", func() string {
			if n, _ := count("P2"); n != n2+1 {
				return fmt.Sprintf("P2 has %d levels, want %d", n, n2+1)
			}
			return ""
		})
	})

	t.Run("truncate tombstones every product", func(t *testing.T) {
		h.exec(`TRUNCATE inventory_levels CASCADE`)
		h.eventually("truncate", func() string {
			ls := h.levels()
			for _, p := range []string{"P1", "P2", "P3"} {
				if l, ok := ls[p]; !ok || l != nil {
					return p + " = " + warehouses(l)
				}
			}
			return ""
		})
	})

	t.Run("idle database keeps confirming", func(t *testing.T) {
		// Only the unrelated table changes; the heartbeat must still move
		// the slot's confirmed LSN past those writes.
		for i := 0; i < 5; i++ {
			h.exec(`INSERT INTO unrelated (note) SELECT 'idle' FROM generate_series(1, 1000)`)
			var target string
			if err := h.conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
				t.Fatal(err)
			}
			h.eventually("confirmed lsn", func() string {
				var passed bool
				err := h.conn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, h.cfg.Slot, target).Scan(&passed)
				if err != nil {
					return err.Error()
				}
				if !passed {
					return "confirmed_flush_lsn still before " + target
				}
				return ""
			})
			time.Sleep(time.Second)
		}
	})
	h.stop()
}

func TestPipelineRefusesMismatchedPublicationAndSlot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
		want  error
	}{
		{"publication of other tables", func(h *harness) {
			h.exec(`CREATE TABLE other (id int PRIMARY KEY)`)
			h.exec(`CREATE PUBLICATION ` + h.cfg.Publication + ` FOR TABLE other`)
		}, source.ErrPublicationMismatch},
		{"slot of another plugin", func(h *harness) {
			h.exec(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, h.cfg.Slot)
		}, source.ErrSlotMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			p, err := New(h.cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = p.Run(ctx)
			if !errors.Is(err, tc.want) || !Permanent(err) {
				t.Fatalf("Run = %v; want a permanent %v", err, tc.want)
			}
		})
	}
}

func TestRecordsProducedAreCounted(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1')`)
	h.exec(`SELECT stock_receive('P1', 'W1', 10, 'seed')`)
	reg := prometheus.NewRegistry()
	h.metrics = NewMetrics(reg)
	h.start()
	defer h.stop()
	produced := func() map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "stock_producer_records_produced_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
		return got
	}
	h.eventually("snapshot counted", func() string {
		if got := produced(); got[h.cfg.LevelsTopic] != 1 || got[h.cfg.ChangesTopic] != 1 {
			return fmt.Sprintf("records produced %v", got)
		}
		return ""
	})
	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'count me', 'm')`)
	h.eventually("adjust counted", func() string {
		got := produced()
		// Snapshot: 1 level + 1 read; the adjust: 1 level + 1 change.
		if got[h.cfg.LevelsTopic] != 2 || got[h.cfg.ChangesTopic] != 2 {
			return fmt.Sprintf("records produced %v", got)
		}
		return ""
	})
	// The adjust's delivery delay from PostgreSQL is measured (heartbeats
	// may add theirs), and it is a delay, not a negative or absurd one.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "stock_producer_source_delay_seconds" {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		if hist.GetSampleCount() < 1 {
			t.Fatalf("source delay observed %d times, want at least the adjust", hist.GetSampleCount())
		}
		if mean := hist.GetSampleSum() / float64(hist.GetSampleCount()); mean < 0 || mean > 30 {
			t.Fatalf("mean source delay %.3f s", mean)
		}
		return
	}
	t.Fatal("no stock_producer_source_delay_seconds metric")
}

// deleteTopics deletes topics, best effort (test cleanup).
func deleteTopics(topics ...string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		return
	}
	defer cl.Close()
	_, _ = kadm.NewClient(cl).DeleteTopics(context.Background(), topics...)
}

func headerOf(r *kgo.Record, key string) []byte {
	for _, hd := range r.Headers {
		if hd.Key == key {
			return hd.Value
		}
	}
	return nil
}
