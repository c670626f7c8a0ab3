package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

// These tests run against the local stack's real Kafka and Redis, each with
// its own topic, consumer group and key prefix.

func adminClient(t *testing.T) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// newTopic creates a unique topic, deleted when the test ends.
func newTopic(t *testing.T, adm *kadm.Client, partitions int32) string {
	t.Helper()
	topic := testenv.Name(t, "test_levels")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("creating topic %s on %v (start the stack with scripts/stack.sh): %v", topic, testenv.KafkaBrokers(), err)
	}
	t.Cleanup(func() {
		if _, err := adm.DeleteTopic(context.Background(), topic); err != nil {
			t.Logf("deleting topic %s: %v", topic, err)
		}
	})
	return topic
}

// produce writes recs in one Kafka transaction, committed or aborted, and
// returns them with their offsets.
func produce(t *testing.T, commit bool, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(testenv.KafkaBrokers()...),
		kgo.TransactionalID(testenv.Name(t, "test_txn")),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("ending transaction: %v", err)
	}
	return recs
}

// lastOffsets is the highest produced offset per partition.
func lastOffsets(recs []*kgo.Record) map[int32]int64 {
	out := map[int32]int64{}
	for _, r := range recs {
		if o, ok := out[r.Partition]; !ok || r.Offset > o {
			out[r.Partition] = r.Offset
		}
	}
	return out
}

func committed(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resp, err := adm.FetchOffsetsForTopics(context.Background(), group, topic)
	if err != nil {
		t.Fatalf("fetching committed offsets: %v", err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// startConsumer runs a consumer of topic in group until the returned stop
// is called (or the test ends) and reports Run's error to the test.
func startConsumer(t *testing.T, topic, group string, store Store) (c *Consumer, stop func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = testenv.KafkaBrokers()
	cfg.Topic = topic
	cfg.Group = group
	cfg.DeadLetterTopic = topic + DeadLetterSuffix
	t.Cleanup(func() { // created by the consumer; gone already when another stop deleted it
		_, _ = kadm.NewClient(mustClient(t)).DeleteTopic(context.Background(), cfg.DeadLetterTopic)
	})
	cfg.BatchSize = 50
	cfg.RetryMin = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.DrainTimeout = 5 * time.Second
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := New(cfg, store, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consumer: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("consumer did not stop")
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// newGroup names a unique consumer group, deleted when the test ends (after
// the consumers started later have stopped: cleanups run last-in first-out).
func newGroup(t *testing.T, adm *kadm.Client) string {
	group := testenv.Name(t, "test_projector")
	t.Cleanup(func() {
		if _, err := adm.DeleteGroup(context.Background(), group); err != nil {
			t.Logf("deleting group %s: %v", group, err)
		}
	})
	return group
}

// onHand reads a product's served on_hand; -1 when not found.
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

func TestProjectsCommittedSnapshotsAndCommitsOffsets(t *testing.T) {
	adm := adminClient(t)
	topic := newTopic(t, adm, 3)
	group := newGroup(t, adm)
	st, _ := storetest.New(t)

	ids := []string{"SKU-0", "SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-5", "SKU-6", "SKU-7"}
	var recs []*kgo.Record
	for v := int64(1); v <= 3; v++ {
		for i, id := range ids {
			recs = append(recs, levelRecord(t, topic, id, pos(uint64(v*100), uint32(i+1)), v))
		}
	}
	// The last product loses its rows: a tombstone after its snapshots.
	recs = append(recs, tombstoneRecord(topic, "SKU-7", pos(400, 1)))
	produced := produce(t, true, recs...)
	// An aborted transaction must never reach Redis (read_committed).
	produce(t, false, levelRecord(t, topic, "SKU-0", pos(900, 1), 999))

	c, stop := startConsumer(t, topic, group, st)
	want := map[string]int64{"SKU-0": 3, "SKU-1": 3, "SKU-2": 3, "SKU-3": 3, "SKU-4": 3, "SKU-5": 3, "SKU-6": 3, "SKU-7": -1}
	testenv.Eventually(t, 30*time.Second, "redis to hold the last snapshot of every product", func() bool {
		for id, n := range want {
			if onHand(t, st, id) != n {
				return false
			}
		}
		return true
	})
	// Offsets are committed once Redis acknowledged, past the transaction
	// marker that follows the last data record: a caught-up group has no lag.
	wantCommitted := map[int32]int64{}
	for p, o := range lastOffsets(produced) {
		wantCommitted[p] = o + 2
	}
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if _, ok := wantCommitted[o.Partition]; ok {
			wantCommitted[o.Partition] = o.Offset
		}
	})
	testenv.Eventually(t, 30*time.Second, "offsets to be committed", func() bool {
		got := committed(t, adm, group, topic)
		for p, o := range wantCommitted {
			if got[p] < o {
				return false
			}
		}
		return true
	})
	// With everything applied and nothing behind, every partition's
	// watermark says it is caught up: readiness must not hold the lateness
	// of a backlog's last batch against a partition that went quiet.
	testenv.Eventually(t, 30*time.Second, "every watermark to say caught up", func() bool {
		marks, err := st.Watermarks(context.Background(), topic)
		if err != nil || len(marks) != len(wantCommitted) {
			return false
		}
		for _, m := range marks {
			if !m.CaughtUp {
				return false
			}
		}
		return true
	})
	for p := range wantCommitted {
		var m dto.Metric
		if err := c.metrics.consumerLag.WithLabelValues(topic, partitionLabel(p)).Write(&m); err != nil {
			t.Fatal(err)
		}
		if lag := m.GetGauge().GetValue(); lag != 0 {
			t.Errorf("partition %d: consumer lag metric %v once caught up, want 0", p, lag)
		}
	}
	if n := counterValue(t, c.metrics.consumed); n != float64(len(recs)) {
		t.Errorf("consumed %v records, want %d (the aborted one is never delivered)", n, len(recs))
	}
	marks, err := st.Watermarks(context.Background(), topic)
	if err != nil || len(marks) != len(wantCommitted) {
		t.Errorf("watermarks = %+v, %v; want one per partition", marks, err)
	}
	stop()

	// A restart in the same group resumes after the committed offsets: only
	// the new record is consumed.
	// After it, a fence in every partition: once the fences are in Redis,
	// anything replayed by mistake (read before them) has been consumed.
	news := []*kgo.Record{levelRecord(t, topic, "SKU-1", pos(500, 1), 5)}
	for i := range 12 {
		news = append(news, levelRecord(t, topic, fmt.Sprintf("FENCE-%d", i), pos(500, uint32(i+2)), 1))
	}
	news = produce(t, true, news...)
	if len(lastOffsets(news[1:])) != len(wantCommitted) {
		t.Fatalf("the fences reach %d partitions, want all %d", len(lastOffsets(news[1:])), len(wantCommitted))
	}
	c2, _ := startConsumer(t, topic, group, st)
	testenv.Eventually(t, 30*time.Second, "the new snapshot and the fences", func() bool {
		for _, r := range news[1:] {
			if onHand(t, st, string(r.Key)) != 1 {
				return false
			}
		}
		return onHand(t, st, "SKU-1") == 5
	})
	if n := counterValue(t, c2.metrics.consumed) - float64(len(news)-1); n != 1 {
		t.Errorf("restarted consumer consumed %v records besides the fences, want 1", n)
	}
	if onHand(t, st, "SKU-0") != 3 || onHand(t, st, "SKU-7") != -1 {
		t.Errorf("state changed across the restart")
	}
}

// flakyStore fails every Apply while down is set.
type flakyStore struct {
	Store
	down atomic.Bool
}

func (f *flakyStore) Apply(ctx context.Context, snaps []stockstore.Snapshot, marks ...stockstore.Watermark) ([]bool, error) {
	if f.down.Load() {
		return nil, errors.New("redis is down (test)")
	}
	return f.Store.Apply(ctx, snaps, marks...)
}

func TestRedisDownCommitsNothingThenCatchesUp(t *testing.T) {
	adm := adminClient(t)
	topic := newTopic(t, adm, 1)
	group := newGroup(t, adm)
	st, _ := storetest.New(t)
	flaky := &flakyStore{Store: st}
	flaky.down.Store(true)

	produced := produce(t, true,
		levelRecord(t, topic, "A", pos(1, 1), 1),
		levelRecord(t, topic, "B", pos(1, 2), 2),
	)
	c, _ := startConsumer(t, topic, group, flaky)
	// applyErrs counts a failure once Apply has returned it.
	testenv.Eventually(t, 30*time.Second, "at least 3 apply errors", func() bool { return counterValue(t, c.metrics.applyErrs) >= 3 })
	if got := committed(t, adm, group, topic); len(got) != 0 {
		t.Fatalf("offsets committed while redis was down: %v", got)
	}

	flaky.down.Store(false)
	testenv.Eventually(t, 30*time.Second, "the batch to be applied after redis came back", func() bool {
		return onHand(t, st, "A") == 1 && onHand(t, st, "B") == 2
	})
	// Past the last record and the transaction marker after it.
	last := lastOffsets(produced)[0]
	testenv.Eventually(t, 30*time.Second, "the offset to be committed", func() bool { return committed(t, adm, group, topic)[0] == last+2 })
}

func TestPoisonRecordsAreSkippedAndCounted(t *testing.T) {
	adm := adminClient(t)
	topic := newTopic(t, adm, 1)
	group := newGroup(t, adm)
	st, _ := storetest.New(t)

	produced := produce(t, true,
		levelRecord(t, topic, "A", pos(1, 1), 1),
		// Named as the producer's, so that the decode is what refuses them.
		&kgo.Record{Topic: topic, Key: []byte("X"), Value: []byte("not avro"), Headers: ceID(pos(1, 1), "X")[1:]},
		&kgo.Record{Topic: topic, Key: []byte("Y"), Headers: ceID(pos(1, 1), "Y")[1:]}, // tombstone without a position
		levelRecord(t, topic, "B", pos(1, 2), 2),
	)
	c, _ := startConsumer(t, topic, group, st)
	testenv.Eventually(t, 30*time.Second, "the good records", func() bool { return onHand(t, st, "A") == 1 && onHand(t, st, "B") == 2 })
	last := lastOffsets(produced)[0]
	testenv.Eventually(t, 30*time.Second, "the offset to move past the poison", func() bool { return committed(t, adm, group, topic)[0] == last+2 })
	if n := counterValue(t, c.metrics.decodeErrs); n != 2 {
		t.Errorf("decode errors = %v, want 2", n)
	}
	if n := counterValue(t, c.metrics.deadLetters); n != 2 {
		t.Errorf("dead letters = %v, want 2", n)
	}
	// The dead letters hold the records as they were, and why and where
	// they came from.
	dl := consumeAll(t, topic+DeadLetterSuffix, 2)
	// The dead-letter topic is partitioned by key like any other, so the
	// two may come back in either order.
	sort.Slice(dl, func(i, j int) bool { return string(dl[i].Key) < string(dl[j].Key) })
	for i, want := range []struct {
		key    string
		offset int64
		reason string
	}{{"X", produced[1].Offset, "bad record"}, {"Y", produced[2].Offset, "tombstone"}} {
		r := dl[i]
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if string(r.Key) != want.key || h[HeaderDLQTopic] != topic || h[HeaderDLQPartition] != "0" ||
			h[HeaderDLQOffset] != fmt.Sprint(want.offset) || !strings.Contains(h[HeaderDLQReason], want.reason) {
			t.Errorf("dead letter %d = key %q headers %v; want key %q from %s/0@%d, reason with %q",
				i, r.Key, h, want.key, topic, want.offset, want.reason)
		}
	}
	if string(dl[0].Value) != "not avro" {
		t.Errorf("dead letter value = %q, want the original", dl[0].Value)
	}
}

func mustClient(t *testing.T) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeAll reads n records of topic from its start.
func consumeAll(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: got %d records, want %d", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// Snapshots replayed out of order across restarts never move a product
// backwards: the consumer relies on the store's position check.
func TestReplayedOlderSnapshotIsStale(t *testing.T) {
	adm := adminClient(t)
	topic := newTopic(t, adm, 1)
	group := newGroup(t, adm)
	st, _ := storetest.New(t)
	ctx := context.Background()
	if _, err := st.Apply(ctx, []stockstore.Snapshot{{ProductID: "A", Position: pos(50, 1), OnHand: 50}}); err != nil {
		t.Fatal(err)
	}
	produce(t, true, levelRecord(t, topic, "A", pos(10, 1), 10), levelRecord(t, topic, "B", pos(10, 2), 10))
	c, _ := startConsumer(t, topic, group, st)
	testenv.Eventually(t, 30*time.Second, "B", func() bool { return onHand(t, st, "B") == 10 })
	testenv.Eventually(t, 30*time.Second, "the stale count", func() bool { return counterValue(t, c.metrics.stale) == 1 })
	if got := onHand(t, st, "A"); got != 50 {
		t.Errorf("A on_hand = %d, want 50 (an older snapshot must not win)", got)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Two consumers share the partitions while snapshots keep coming: one joins
// mid-stream, the first leaves. At the end Redis holds the last snapshot of
// every product, and no reader ever saw a product go backwards.
func TestRebalanceUnderLoadNeverGoesBackwards(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	adm := adminClient(t)
	topic := newTopic(t, adm, 6)
	group := newGroup(t, adm)
	st, _ := storetest.New(t)
	ctx := context.Background()

	const products, rounds = 200, 30
	ids := make([]string, products)
	for i := range ids {
		ids[i] = fmt.Sprintf("SKU-%03d", i)
	}

	// The reader: positions it sees must never decrease.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var backwards atomic.Int64
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		seen := map[string]string{}
		for watchCtx.Err() == nil {
			ps, _, err := st.GetMany(ctx, ids)
			if err != nil {
				continue
			}
			for _, p := range ps {
				cur, err := position.Parse(p.Position)
				if err != nil {
					backwards.Add(1)
					continue
				}
				if prev, ok := seen[p.ProductID]; ok {
					if pp, _ := position.Parse(prev); pp.After(cur) {
						backwards.Add(1)
					}
				}
				seen[p.ProductID] = p.Position
			}
		}
	}()

	a, stopA := startConsumer(t, topic, group, st)
	var b *Consumer
	for r := 1; r <= rounds; r++ {
		recs := make([]*kgo.Record, products)
		for i, id := range ids {
			recs[i] = levelRecord(t, topic, id, pos(uint64(r)*1000, uint32(i+1)), int64(r))
		}
		produce(t, true, recs...)
		switch r {
		case 10:
			b, _ = startConsumer(t, topic, group, st) // B joins: partitions move
		case 20:
			stopA() // A leaves: B takes everything
		}
	}
	testenv.Eventually(t, 30*time.Second, "every product at its last snapshot", func() bool {
		ps, notFound, err := st.GetMany(ctx, ids)
		if err != nil || len(notFound) > 0 {
			return false
		}
		for _, p := range ps {
			if p.OnHand != rounds {
				return false
			}
		}
		return true
	})
	stopWatch()
	<-watched
	if n := backwards.Load(); n > 0 {
		t.Errorf("a reader saw a product go backwards %d times", n)
	}
	if counterValue(t, a.metrics.consumed) == 0 || counterValue(t, b.metrics.consumed) == 0 {
		t.Errorf("consumed A %v, B %v: both should have had partitions",
			counterValue(t, a.metrics.consumed), counterValue(t, b.metrics.consumed))
	}
}
