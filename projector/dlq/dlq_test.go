package dlq

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/projector/consume"
	"github.com/stockpipe/stock/schemas"
)

// These tests run against the local stack's real Kafka and Redis, each with
// its own topics and key prefix.

func pos(lsn uint64) position.Position { return position.Position{LSN: lsn, Index: 1} }

func kafkaClient(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// newTopic creates a unique topic of one partition (dead letters then come
// back in the order written), deleted when the test ends.
func newTopic(t *testing.T, cl *kgo.Client, prefix string) string {
	t.Helper()
	adm := kadm.NewClient(cl)
	topic := testenv.Name(t, prefix)
	if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
		t.Fatalf("creating topic %s (start the stack with scripts/stack.sh): %v", topic, err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopic(context.Background(), topic) })
	return topic
}

// levelRecord is a stock.levels.v1 record as the producer writes it, its
// on_hand telling which write it was.
func levelRecord(t *testing.T, topic, id string, p position.Position, onHand int64) *kgo.Record {
	t.Helper()
	var codec schemas.Codec
	status := schemas.Status(onHand, 5)
	v, err := codec.EncodeLevel(&schemas.StockLevel{
		ProductID: id, OnHand: onHand, Available: onHand, Status: status,
		Warehouses: []schemas.WarehouseStock{{WarehouseID: "WH-01", OnHand: int32(onHand), Available: int32(onHand),
			LowStockThreshold: 5, Status: status, UpdatedAt: time.Now()}},
		Position: schemas.PositionOf(p), TxID: 7, CommitTime: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(id), Value: v, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderID, Value: []byte(p.String() + "/" + id)},
		{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "test")},
	}}
}

// deadLetter is r as the projector dead-letters it from levels offset off.
func deadLetter(dlqTopic, levels string, off int64, reason string, r *kgo.Record) *kgo.Record {
	hs := append(r.Headers[:len(r.Headers):len(r.Headers)],
		kgo.RecordHeader{Key: consume.HeaderDLQReasonCode, Value: []byte(reason)},
		kgo.RecordHeader{Key: consume.HeaderDLQReason, Value: []byte("bad record: " + reason)},
		kgo.RecordHeader{Key: consume.HeaderDLQTopic, Value: []byte(levels)},
		kgo.RecordHeader{Key: consume.HeaderDLQPartition, Value: []byte("0")},
		kgo.RecordHeader{Key: consume.HeaderDLQOffset, Value: []byte(strconv.FormatInt(off, 10))},
		kgo.RecordHeader{Key: consume.HeaderDLQTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{Topic: dlqTopic, Key: r.Key, Value: r.Value, Headers: hs}
}

func onHand(t *testing.T, st *stockstore.Store, id string) int64 {
	t.Helper()
	p, err := st.Get(context.Background(), id)
	if errors.Is(err, stockstore.ErrNotFound) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.OnHand
}

func TestReplayAppliesWhatNowPassesOnce(t *testing.T) {
	cl := kafkaClient(t)
	levels := testenv.Name(t, "test_levels") // never read: dead letters only name it
	dlqTopic := newTopic(t, cl, "test_levels_dlq")
	st, _ := storetest.New(t)
	ctx := context.Background()
	// Redis already holds a newer A than its dead letter.
	if _, err := st.Apply(ctx, []stockstore.Snapshot{{ProductID: "A", Position: pos(50), OnHand: 50}}); err != nil {
		t.Fatal(err)
	}
	noise := &kgo.Record{Key: []byte("C"), Value: []byte("not avro"), Headers: levelRecord(t, "", "C", pos(1), 1).Headers}
	letters := []*kgo.Record{
		// Refused by a projector with a bug, valid now.
		deadLetter(dlqTopic, levels, 10, consume.ReasonBreaksContract, levelRecord(t, "", "B", pos(10), 10)),
		deadLetter(dlqTopic, levels, 11, consume.ReasonBreaksContract, levelRecord(t, "", "A", pos(10), 10)),
		deadLetter(dlqTopic, levels, 12, consume.ReasonUndecodable, noise),
		deadLetter(dlqTopic, levels, 13, consume.ReasonNotTransactional, levelRecord(t, "", "D", pos(10), 10)),
		deadLetter(dlqTopic, "another_topic", 14, consume.ReasonBreaksContract, levelRecord(t, "", "E", pos(10), 10)),
	}
	if err := cl.ProduceSync(ctx, letters...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Kafka: kafkaconn.Config{Brokers: testenv.KafkaBrokers()}, Topic: levels, DeadLetterTopic: dlqTopic, Filter: AllFilter()}

	var out bytes.Buffer
	n, err := List(ctx, cfg, &out)
	if err != nil || n != 5 {
		t.Fatalf("list: %d, %v\n%s", n, err, out.String())
	}
	for _, want := range []string{"PARTITION", `"B"`, levels + "/0@10", "breaks_contract 3", "not_transactional 1", "5 dead letters"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list output lacks %q:\n%s", want, out.String())
		}
	}

	replay := func(rc ReplayConfig, f Filter) Report {
		t.Helper()
		c := cfg
		c.Filter = f
		var out bytes.Buffer
		rep, err := ReplayTo(ctx, c, rc, st, &out)
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out.String())
		}
		t.Logf("replay:\n%s", out.String())
		return rep
	}
	rep := replay(ReplayConfig{BatchSize: 2}, AllFilter())
	if want := (Report{Applied: 1, Stale: 1, Refused: 2, Untrusted: 1}); !equal(rep, want) {
		t.Errorf("first replay %v, want %v", rep, want)
	}
	if a, b, d, e := onHand(t, st, "A"), onHand(t, st, "B"), onHand(t, st, "D"), onHand(t, st, "E"); a != 50 || b != 10 || d != -1 || e != -1 {
		t.Errorf("after replay A=%d B=%d D=%d E=%d; want 50 (older letter lost), 10 (applied), absent, absent", a, b, d, e)
	}
	// Again: the applied one is stale now, nothing changes.
	if _, err := st.Apply(ctx, []stockstore.Snapshot{{ProductID: "B", Position: pos(20), OnHand: 20}}); err != nil {
		t.Fatal(err)
	}
	rep = replay(ReplayConfig{}, AllFilter())
	if want := (Report{Stale: 2, Refused: 2, Untrusted: 1}); !equal(rep, want) {
		t.Errorf("second replay %v, want %v", rep, want)
	}
	if b := onHand(t, st, "B"); b != 20 {
		t.Errorf("B = %d after replaying its older dead letter, want 20", b)
	}
	// Only the untrusted one, by offset and by reason, explicitly allowed.
	f := AllFilter()
	f.FromOffset, f.ToOffset, f.ReasonCodes = 3, 3, []string{consume.ReasonNotTransactional}
	if rep := replay(ReplayConfig{DryRun: true, AllowUntrusted: true}, f); !equal(rep, Report{Valid: 1}) || onHand(t, st, "D") != -1 {
		t.Errorf("dry run %v wrote D=%d; want it valid and not written", rep, onHand(t, st, "D"))
	}
	if rep := replay(ReplayConfig{AllowUntrusted: true}, f); !equal(rep, Report{Applied: 1}) || onHand(t, st, "D") != 10 {
		t.Errorf("allowed replay %v, D=%d; want D applied", rep, onHand(t, st, "D"))
	}
}

// A record written outside a transaction, dead-lettered by the real
// projector, is refused by a replay unless explicitly allowed.
func TestReplayRefusesWhatTheProducerNeverWrote(t *testing.T) {
	cl := kafkaClient(t)
	levels := newTopic(t, cl, "test_levels")
	dlqTopic := levels + consume.DeadLetterSuffix
	t.Cleanup(func() { _, _ = kadm.NewClient(cl).DeleteTopic(context.Background(), dlqTopic) })
	group := testenv.Name(t, "test_projector")
	t.Cleanup(func() { _, _ = kadm.NewClient(cl).DeleteGroup(context.Background(), group) })
	st, _ := storetest.New(t)
	ctx := context.Background()

	if err := cl.ProduceSync(ctx, levelRecord(t, levels, "N", pos(5), 5)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cc := consume.DefaultConfig()
	cc.Kafka.Brokers, cc.Topic, cc.Group, cc.DeadLetterTopic = testenv.KafkaBrokers(), levels, group, dlqTopic
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)) // the dead-lettering ERROR is expected
	c, err := consume.New(cc, st, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n, _, err := Count(ctx, kafkaconn.Config{Brokers: testenv.KafkaBrokers()}, dlqTopic); err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record was never dead-lettered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	cfg := Config{Kafka: kafkaconn.Config{Brokers: testenv.KafkaBrokers()}, Topic: levels, DeadLetterTopic: dlqTopic, Filter: AllFilter()}
	var out bytes.Buffer
	rep, err := ReplayTo(ctx, cfg, ReplayConfig{}, st, &out)
	if err != nil || !equal(rep, Report{Untrusted: 1}) || onHand(t, st, "N") != -1 {
		t.Fatalf("replay %v, %v, N=%d; want it refused as untrusted\n%s", rep, err, onHand(t, st, "N"), out.String())
	}
	if !strings.Contains(out.String(), "not_transactional") || !strings.Contains(out.String(), "--allow-untrusted") {
		t.Errorf("replay output does not say why:\n%s", out.String())
	}
	rep, err = Replay(ctx, cfg, ReplayConfig{AllowUntrusted: true}, st, func(Result) {})
	if err != nil || !equal(rep, Report{Applied: 1}) || onHand(t, st, "N") != 5 {
		t.Errorf("allowed replay %v, %v, N=%d; want it applied", rep, err, onHand(t, st, "N"))
	}
}

func equal(a, b Report) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
