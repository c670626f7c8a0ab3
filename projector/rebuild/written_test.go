package rebuild

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/schemas"
)

// A planned rebuild while the producer keeps writing and the live projector
// keeps applying: whatever was written before, during or after the replay
// is in the cache once the live projector has caught up after the switch,
// at its last position, deletions included. Every write names a product
// of its own too, so a record the switch dropped (applied to the old
// generation only, and never again) would leave that product missing.
func TestRebuildWhileTheTopicIsWritten(t *testing.T) {
	adm := adminClient(t)
	topic := newTopic(t, adm, 3)
	group := newGroup(t, adm)
	st, rdb := storetest.New(t)
	ctx := context.Background()

	var mu sync.Mutex
	last := map[string]position.Position{} // the topic's last position per product
	deleted := map[string]bool{}
	var writtenAt []time.Time // when each write during the rebuild was committed
	prod := newProducer(t)
	write := func(recs []*kgo.Record) error {
		if err := prod.write(recs...); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			id := string(r.Key)
			last[id] = positionOf(r)
			deleted[id] = r.Value == nil
		}
		return nil
	}

	// Enough records that the replay takes a while, so that writes land in
	// it, in its catch-up rounds and in the mirrored stretch before the
	// switch.
	const products = 5000
	for round := uint64(1); round <= 2; round++ {
		recs := make([]*kgo.Record, 0, products)
		for i := range products {
			recs = append(recs, levelRecord(t, topic, fmt.Sprintf("SKU-%05d", i), pos(round*1000, uint32(i+1)), int64(round)))
		}
		if err := write(recs); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	startConsumer(t, topic, group, st.RequireGeneration())
	waitCaughtUp(t, adm, group, topic)
	oldGen, _ := st.ActiveGeneration(ctx)

	// The writes, built here: a test may only fail from its own goroutine.
	// Far more than the rebuild lasts, at a few milliseconds each.
	var writes [][]*kgo.Record
	for n := uint64(1); n <= 4000; n++ {
		p := func(i uint32) position.Position { return pos(10_000+n, i) }
		recs := []*kgo.Record{
			levelRecord(t, topic, fmt.Sprintf("NEW-%05d", n), p(1), int64(n%12)),
			levelRecord(t, topic, fmt.Sprintf("SKU-%05d", n*7%products), p(2), int64(n%12)),
		}
		if n%10 == 0 {
			recs = append(recs, tombstoneRecord(topic, fmt.Sprintf("SKU-%05d", n*13%products), p(3)))
		}
		writes = append(writes, recs)
	}
	stop := make(chan struct{})
	written := make(chan error, 1)
	go func() {
		for _, recs := range writes {
			select {
			case <-stop:
				written <- nil
				return
			default:
			}
			if err := write(recs); err != nil {
				written <- err
				return
			}
			mu.Lock()
			writtenAt = append(writtenAt, time.Now())
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		written <- nil
	}()

	start := time.Now()
	stats, err := Run(ctx, rebuildConfig(topic), st, testLog, prometheus.NewRegistry())
	// Run returned after the retire delay: the writes went on past the
	// switch for that long.
	close(stop)
	if werr := <-written; werr != nil {
		t.Fatalf("writing during the rebuild: %v", werr)
	}
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	mu.Lock()
	during, after := 0, 0
	for _, at := range writtenAt {
		if at.Before(start.Add(stats.Switched)) {
			during++
		} else {
			after++
		}
	}
	mu.Unlock()
	if during == 0 || after == 0 {
		t.Fatalf("%d writes before the switch, %d after: the test needs both", during, after)
	}
	t.Logf("%d writes during the rebuild up to the switch (%s), %d after; %d records replayed",
		during, stats.Switched, after, stats.Records)

	if g, _ := st.ActiveGeneration(ctx); g != stats.Generation || g == oldGen {
		t.Fatalf("active generation = %d, want the rebuilt %d (was %d)", g, stats.Generation, oldGen)
	}
	if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), oldGen))); n != 0 {
		t.Errorf("%d keys of the old generation left", n)
	}
	waitCaughtUp(t, adm, group, topic)
	mu.Lock()
	defer mu.Unlock()
	for id, want := range last {
		p, del, ok, err := st.StoredPosition(ctx, id)
		switch {
		case err != nil:
			t.Fatal(err)
		case !ok:
			t.Errorf("%s missing after the rebuild (last written at %s)", id, want)
		case p != want || del != deleted[id]:
			t.Errorf("%s at %s (deleted %v), last written at %s (deleted %v)", id, p, del, want, deleted[id])
		}
	}
}

// positionOf is the position a test record carries in its CloudEvents id.
func positionOf(r *kgo.Record) position.Position {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderID {
			p, _ := schemas.PositionOfEventID(string(h.Value))
			return p
		}
	}
	return position.Position{}
}
