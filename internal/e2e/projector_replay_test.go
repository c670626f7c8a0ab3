package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

// fillTopic writes rounds of snapshots of products (some deleted at the
// end) and returns the ids.
func fillTopic(t *testing.T, topic string, products, rounds int) []string {
	t.Helper()
	ids := make([]string, products)
	prod := newTxProducer(t)
	for r := 1; r <= rounds; r++ {
		recs := make([]*kgo.Record, 0, products)
		for i := range ids {
			ids[i] = fmt.Sprintf("SKU-%05d", i)
			p := position.Position{LSN: uint64(r) * 1000, Index: uint32(i + 1)}
			if r == rounds && i%97 == 0 {
				recs = append(recs, tombstoneRecord(topic, ids[i], p))
				continue
			}
			recs = append(recs, levelRecord(t, topic, ids[i], p, int32((r*7+i)%12)))
		}
		if err := prod.write(recs...); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func dumpActive(t *testing.T, rdb redis.UniversalClient, st *stockstore.Store) map[string]string {
	t.Helper()
	g, err := st.ActiveGeneration(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), g))
}

// pjCaughtUp reports, for testenv.Eventually, a partition of topic whose offset group
// has not committed up to the topic's current end ("" when none). Offsets
// are committed once Redis acknowledged the batch, its watermark included:
// the projection is then complete.
func pjCaughtUp(t *testing.T, topic, group string) func() string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("listing end offsets of %s: %v", topic, err)
	}
	return func() string {
		got, err := adm.FetchOffsetsForTopics(ctx, group, topic)
		if err == nil {
			err = got.Error()
		}
		if err != nil {
			return err.Error()
		}
		why := ""
		ends.Each(func(o kadm.ListedOffset) {
			// An empty partition is caught up: the group never commits one.
			if o.Offset == 0 {
				return
			}
			if c, _ := got.Lookup(topic, o.Partition); why == "" && c.At < o.Offset {
				why = fmt.Sprintf("partition %d committed at %d, ends at %d", o.Partition, c.At, o.Offset)
			}
		})
		return why
	}
}

func diffDumps(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	if maps.Equal(a, b) {
		return
	}
	n := 0
	for k, v := range a {
		if b[k] != v && n < 10 {
			t.Errorf("%s: key %s: %q vs %q", what, k, v, b[k])
			n++
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && n < 10 {
			t.Errorf("%s: key %s only on the right", what, k)
			n++
		}
	}
	t.Errorf("%s: %d keys vs %d keys", what, len(a), len(b))
}

// Replaying the topic from offset 0 into an empty Redis gives, key for key,
// the state the live projection built; and a projector restarted on a
// flushed Redis (its group has committed offsets) detects it and rebuilds
// the same state by itself.
func TestProjectorReplayEqualsLive(t *testing.T) {
	topic := pjTopic(t, 3)
	ids := fillTopic(t, topic, 1500, 4)
	last := lastInTopic(t, topic)
	rdb := storetest.Client(t)

	live := pjStore(t)
	group := testenv.Name(t, "pj_group")
	p := start(t, "projector", projectorArgs(topic, group, live.Prefix())...)
	testenv.Eventually(t, time.Minute, "the live projection", func() string { return matchesTopic(t, live, last) })
	testenv.Eventually(t, time.Minute, "the live group to commit the topic", pjCaughtUp(t, topic, group))
	liveDump := dumpActive(t, rdb, live)
	if len(liveDump) < len(ids) {
		t.Fatalf("live dump has %d keys", len(liveDump))
	}

	t.Run("replay into an empty redis", func(t *testing.T) {
		replay := pjStore(t)
		replayGroup := testenv.Name(t, "pj_group")
		start(t, "projector", projectorArgs(topic, replayGroup, replay.Prefix())...)
		testenv.Eventually(t, time.Minute, "the replay", func() string { return matchesTopic(t, replay, last) })
		testenv.Eventually(t, time.Minute, "the replay group to commit the topic", pjCaughtUp(t, topic, replayGroup))
		diffDumps(t, "live vs replay", liveDump, dumpActive(t, rdb, replay))
	})

	t.Run("flushed redis is rebuilt at start", func(t *testing.T) {
		p.stop()
		storetest.DeletePrefix(t, rdb, live.Prefix()) // what FLUSHALL does to this prefix
		p2 := start(t, "projector", projectorArgs(topic, group, live.Prefix())...)
		p2.waitLog(t, "cache rebuilt at start", time.Minute)
		testenv.Eventually(t, time.Minute, "the rebuilt cache", func() string { return matchesTopic(t, live, last) })
		diffDumps(t, "live vs rebuilt after flush", liveDump, dumpActive(t, rdb, live))
	})
}

// "projector rebuild" replays into a new generation while readers read the
// active one: no read fails or misses a product, readers end on the new
// generation, and the old one is deleted.
func TestProjectorRebuildCommandUnderReads(t *testing.T) {
	topic := pjTopic(t, 3)
	ids := fillTopic(t, topic, 2000, 3)
	last := lastInTopic(t, topic)
	var present []string
	for id, r := range last {
		if r.Value != nil {
			present = append(present, id)
		}
	}
	rdb := storetest.Client(t)
	st := pjStore(t)
	group := testenv.Name(t, "pj_group")
	start(t, "projector", projectorArgs(topic, group, st.Prefix())...)
	testenv.Eventually(t, time.Minute, "the live projection", func() string { return matchesTopic(t, st, last) })
	testenv.Eventually(t, time.Minute, "the live group to commit the topic", pjCaughtUp(t, topic, group))
	before := dumpActive(t, rdb, st)
	oldGen, _ := st.ActiveGeneration(context.Background())

	// Readers with their own generation cache, as the query API has.
	reader, err := stockstore.New(rdb, st.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	var reads, bad atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx := context.Background()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < len(present); i += 500 {
				docs, err := reader.GetManyJSON(ctx, present[i:min(i+500, len(present))])
				reads.Add(1)
				if err != nil || slices.ContainsFunc(docs, func(d json.RawMessage) bool { return d == nil }) {
					bad.Add(1)
				}
			}
			if _, _, err := reader.LowStock(ctx, "WH-01", "", 100); err != nil {
				bad.Add(1)
			}
		}
	}()
	rb := start(t, "projector", append([]string{"rebuild"}, projectorArgs(topic, "unused", st.Prefix())...)...)
	if err := rb.cmd.Wait(); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	close(stop)
	<-done
	if !rb.logged("rebuild progress") && !rb.logged("rebuild done") {
		t.Error("rebuild logged no progress")
	}
	if bad.Load() > 0 || reads.Load() == 0 {
		t.Errorf("%d of %d reads failed or missed a product during the rebuild", bad.Load(), reads.Load())
	}
	newGen, _ := st.ActiveGeneration(context.Background())
	if newGen == oldGen {
		t.Fatalf("active generation still %d", oldGen)
	}
	if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), oldGen))); n != 0 {
		t.Errorf("old generation %d still has %d keys", oldGen, n)
	}
	diffDumps(t, "before vs after rebuild", before, dumpActive(t, rdb, st))
	_ = ids
}
