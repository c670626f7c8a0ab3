package rebuild

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

// A rebuild replays the topic into a new generation while readers keep
// reading the old one: no read fails or misses a product, and at the end
// the new generation equals, key for key, what the live projection built.
func TestRebuildSwitchesGenerationsUnderReads(t *testing.T) {
	adm := adminClient(t)
	topic := newTopic(t, adm, 3)
	group := newGroup(t, adm)
	st, rdb := storetest.New(t)
	ctx := context.Background()

	const products = 300
	ids := make([]string, products)
	var recs []*kgo.Record
	for round := 1; round <= 3; round++ {
		for i := range ids {
			ids[i] = fmt.Sprintf("SKU-%04d", i)
			recs = append(recs, levelRecord(t, topic, ids[i], pos(uint64(round)*1000, uint32(i+1)), int64(round)))
		}
	}
	recs = append(recs, tombstoneRecord(topic, "SKU-GONE", pos(5000, 1)),
		&kgo.Record{Topic: topic, Key: []byte("SKU-POISON"), Value: []byte("junk")})
	produce(t, recs...)
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	startConsumer(t, topic, group, st)
	testenv.Eventually(t, 30*time.Second, "the live projection", func() bool {
		ps, missing, err := st.GetMany(ctx, ids)
		if err != nil || len(missing) > 0 {
			return false
		}
		for _, p := range ps {
			if p.OnHand != 3 {
				return false
			}
		}
		return true
	})
	// The tombstone, the poison record and the watermarks follow the
	// snapshots: the live state is complete once the offsets are committed.
	waitCaughtUp(t, adm, group, topic)
	oldGen, _ := st.ActiveGeneration(ctx)
	live := storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), oldGen))

	// Readers in their own Store (their own generation cache), like the API.
	reader, err := stockstore.New(rdb, st.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	var reads, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, missing, err := reader.GetMany(ctx, ids)
			reads.Add(1)
			if err != nil || len(missing) > 0 {
				failed.Add(1)
				t.Logf("read: err %v, missing %d", err, len(missing))
			}
		}
	}()

	stats, err := Run(ctx, rebuildConfig(topic), st, testLog, prometheus.NewRegistry())
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if stats.Previous != oldGen || stats.Generation == oldGen || stats.Records != int64(len(recs)) {
		t.Errorf("stats = %+v; want previous %d and %d records", stats, oldGen, len(recs))
	}
	if g, _ := st.ActiveGeneration(ctx); g != stats.Generation {
		t.Errorf("active generation = %d, want %d", g, stats.Generation)
	}
	if n := failed.Load(); n > 0 || reads.Load() == 0 {
		t.Errorf("%d of %d reads failed or missed a product during the rebuild", n, reads.Load())
	}
	rebuilt := storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), stats.Generation))
	if !maps.Equal(live, rebuilt) {
		for k, v := range live {
			if rebuilt[k] != v {
				t.Errorf("key %s: live %q, rebuilt %q", k, v, rebuilt[k])
			}
		}
		for k := range rebuilt {
			if _, ok := live[k]; !ok {
				t.Errorf("key %s only in the rebuilt generation", k)
			}
		}
	}
	if len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), oldGen))) != 0 {
		t.Errorf("old generation %d not deleted", oldGen)
	}
}
