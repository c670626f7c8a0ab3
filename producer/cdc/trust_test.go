package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/schemas"
)

// strangerWrite writes recs as a client that is not the producer: a plain
// franz-go client, inside a committed transaction of its own when txn.
func strangerWrite(t *testing.T, txn bool, recs ...*kgo.Record) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(testenv.KafkaBrokers()...)}
	if txn {
		opts = append(opts, kgo.TransactionalID(testenv.Name(t, "stranger")))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if txn {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("stranger's write: %v", err)
	}
	if txn {
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
}

// runOnce runs a pipeline of cfg until it fails or timeout passes, and
// returns its error (nil when it ran until the timeout). A slot still held
// by the walsender of a run just stopped is waited for, as the producer's
// restart loop would.
func runOnce(t *testing.T, cfg Config, m *Metrics, timeout time.Duration) error {
	t.Helper()
	p, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), m)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := p.Run(ctx)
		cancel()
		if !errors.Is(err, ErrSlotInUse) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Records on the levels topic that the producer did not write, with or
// without a transaction, cost a restart nothing: it starts, skips them with
// a metric, and its state (so its next levels) is what it wrote itself.
func TestStrayRecordsNeitherStopNorChangeARestart(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1'), ('W2','W2')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1'), ('P2','P2')`)
	h.exec(`SELECT stock_receive('P1', 'W1', 10, 'seed')`)
	h.exec(`SELECT stock_receive('P1', 'W2', 5, 'seed')`)
	h.exec(`SELECT stock_receive('P2', 'W1', 7, 'seed')`)
	h.start()
	h.waitLevel("snapshot", "P1", "W1=10 W2=5")
	h.stop()

	var codec schemas.Codec
	lie := h.levels()["P1"]
	lie.Warehouses = lie.Warehouses[:1]
	lie.Warehouses[0].OnHand, lie.Warehouses[0].Available = 999, 999
	lie.OnHand, lie.Available = 999, 999
	lie.Status, lie.Warehouses[0].Status = schemas.StatusInStock, schemas.StatusInStock
	lie.Position.LSN += 1 << 40
	lying, err := codec.EncodeLevel(lie)
	if err != nil {
		t.Fatal(err)
	}
	topic := h.cfg.LevelsTopic
	// A billion warehouses claimed in a few bytes: product "P2", five
	// longs and the status, then the array's block count.
	huge := []byte{0, 0, 0, 0, 0, 4, 'P', '2', 0, 0, 0, 0, 0, 0, 0x80, 0xa8, 0xd6, 0xb9, 0x07}
	strangerWrite(t, false,
		&kgo.Record{Topic: topic, Key: []byte("P1")},               // a tombstone
		&kgo.Record{Topic: topic, Key: []byte("P1"), Value: lying}, // well-formed, one warehouse
		&kgo.Record{Topic: topic, Key: []byte("P2"), Value: []byte("\x17garbage")})
	// In a transaction, and named as the producer's: only the checks of
	// the contract stand between these and the state.
	ours := []kgo.RecordHeader{{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + h.cfg.Slot)}}
	lie.OnHand = 5
	sums, err := codec.EncodeLevel(lie)
	if err != nil {
		t.Fatal(err)
	}
	strangerWrite(t, true,
		&kgo.Record{Topic: topic, Key: []byte("P1"), Value: lying}, // another tool's
		&kgo.Record{Topic: topic, Key: []byte("P2"), Value: huge, Headers: ours},
		&kgo.Record{Topic: topic, Key: []byte("P2"), Value: []byte{1, 2, 3}, Headers: ours},
		&kgo.Record{Topic: topic, Key: []byte("P1"), Value: sums, Headers: ours},
		&kgo.Record{Topic: topic, Key: []byte("P\x002"), Value: lying, Headers: ours},
		&kgo.Record{Topic: topic, Key: []byte("P1"), Headers: ours}) // a tombstone without its position

	// The state store still matches Kafka's checkpoint (nobody else
	// writes checkpoints): the restart does not read the levels topic, and
	// the stray records never come near the state.
	h.start()
	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'after', 'after')`)
	h.exec(`SELECT stock_adjust('P2', 'W1', 1, 'after', 'after')`)
	h.waitLevel("change after the stray records", "P1", "W1=11 W2=5")
	h.waitLevel("change after the stray records", "P2", "W1=8")
	h.stop()

	// A store lost with its disk is rebuilt from the levels topic, stray
	// records and all: they are skipped, counted, and change nothing.
	missing := testutil.ToFloat64(h.metrics.stateRebuilds.WithLabelValues("missing"))
	if err := os.RemoveAll(h.cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	h.start()
	defer h.stop()
	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'after', 'after')`)
	h.exec(`SELECT stock_adjust('P2', 'W1', 1, 'after', 'after')`)
	h.waitLevel("change after rebuilding past the stray records", "P1", "W1=12 W2=5")
	h.waitLevel("change after rebuilding past the stray records", "P2", "W1=9")
	if got := testutil.ToFloat64(h.metrics.stateRebuilds.WithLabelValues("missing")); got != missing+1 {
		t.Errorf("state_rebuilds_total{reason=missing} = %v, want %v", got, missing+1)
	}
	for _, reason := range []string{"not_transactional", "not_ours", "undecodable", "breaks_contract", "bad_key", "bad_tombstone"} {
		if got := testutil.ToFloat64(h.metrics.foreignRecords.WithLabelValues("levels", reason)); got < 1 {
			t.Errorf("foreign_records_total{topic=levels,reason=%s} = %v, want >= 1", reason, got)
		}
	}
}

// A checkpoint the producer did not write is ignored when written outside
// a transaction, and stops the start with how to recover when it claims
// more than the database ever wrote.
func TestForgedCheckpoints(t *testing.T) {
	h := snapshottedAndStopped(t)

	forged, _ := json.Marshal(map[string]any{"slot": h.cfg.Slot, "commit_lsn": uint64(1) << 60, "end_lsn": uint64(1) << 60, "snapshot_done": true})
	cp := func() *kgo.Record {
		return &kgo.Record{Topic: h.cfg.CheckpointTopic, Key: []byte(h.cfg.Slot), Value: forged}
	}
	strangerWrite(t, false, cp())
	h.start()
	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'after', 'after')`)
	h.waitLevel("change after a forged checkpoint outside a transaction", "P1", "W1=11")
	h.stop()
	if got := testutil.ToFloat64(h.metrics.foreignRecords.WithLabelValues("checkpoints", "not_transactional")); got < 1 {
		t.Errorf("foreign_records_total{topic=checkpoints} = %v, want >= 1", got)
	}

	strangerWrite(t, true, cp())
	err := runOnce(t, h.cfg, NewMetrics(prometheus.NewRegistry()), 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "beyond this database's WAL") || !strings.Contains(err.Error(), "tombstone") {
		t.Fatalf("run with a forged transactional checkpoint: %v, want an error saying it is beyond the WAL and how to recover", err)
	}
}

// Two deployments (different topics) given the same slot name: the second
// is refused and changes nothing, so the first's topics miss no change;
// --take-over-slot makes the slot the second's, and the first is refused in
// turn instead of resuming from where the second left the slot.
func TestSecondDeploymentNeverTakesTheSlotSilently(t *testing.T) {
	h := snapshottedAndStopped(t)

	staging := h.cfg
	staging.LevelsTopic, staging.ChangesTopic = h.cfg.LevelsTopic+".staging", h.cfg.ChangesTopic+".staging"
	staging.AlertsTopic, staging.CheckpointTopic = h.cfg.AlertsTopic+".staging", h.cfg.CheckpointTopic+".staging"
	t.Cleanup(func() {
		deleteTopics(staging.LevelsTopic, staging.ChangesTopic, staging.AlertsTopic, staging.CheckpointTopic)
	})
	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'while stopped', 'a')`)
	err := runOnce(t, staging, NewMetrics(prometheus.NewRegistry()), 30*time.Second)
	if !errors.Is(err, source.ErrSlotOwner) {
		t.Fatalf("second deployment: %v, want ErrSlotOwner", err)
	}
	h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'while stopped', 'b')`)
	h.start()
	h.waitLevel("every change made while the second deployment tried", "P1", "W1=12")
	h.stop()

	staging.TakeOverSlot = true
	if err := runOnce(t, staging, NewMetrics(prometheus.NewRegistry()), 10*time.Second); !errors.Is(err, context.DeadlineExceeded) && err != nil {
		t.Fatalf("take over: %v", err)
	}
	err = runOnce(t, h.cfg, NewMetrics(prometheus.NewRegistry()), 30*time.Second)
	if !errors.Is(err, source.ErrSlotOwner) {
		t.Fatalf("first deployment after the take-over: %v, want ErrSlotOwner", err)
	}
}

// A slot read by someone else while the producer was stopped (here
// pg_logical_slot_get_binary_changes, as any tool could) is not resumed as
// if nothing happened: the producer says so and repairs with a snapshot.
func TestSlotAdvancedElsewhereIsRepaired(t *testing.T) {
	h := snapshottedAndStopped(t)

	h.exec(`SELECT stock_adjust('P1', 'W1', 5, 'consumed elsewhere', 'x')`)
	h.exec(`SELECT count(*) FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)`,
		h.cfg.Slot, h.cfg.Publication)
	h.start()
	defer h.stop()
	h.waitLevel("the change another reader consumed, repaired by a snapshot", "P1", "W1=15")
	if got := testutil.ToFloat64(h.metrics.slotRepairs.WithLabelValues("advanced_elsewhere")); got != 1 {
		t.Fatalf("slot_repairs_total{reason=advanced_elsewhere} = %v, want 1", got)
	}
}

// snapshottedAndStopped is a harness whose producer took the snapshot of
// one product, P1 with 10 in W1, and stopped.
func snapshottedAndStopped(t *testing.T) *harness {
	h := newHarness(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W1','W1')`)
	h.exec(`INSERT INTO products (product_id, name) VALUES ('P1','P1')`)
	h.exec(`SELECT stock_receive('P1', 'W1', 10, 'seed')`)
	h.start()
	h.waitLevel("snapshot", "P1", "W1=10")
	h.stop()
	return h
}
