package rebuild

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

// The projection on a real Redis Cluster of three masters, from the real
// Kafka: the consumer applies the topic, "projector rebuild" switches
// generations without changing a key's value, and a master that loses its
// data (restarted without persistence) is noticed by the guard and the
// cache rebuilt, while records keep arriving.
func TestProjectionOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	rdb, addrs := storetest.Cluster(t)
	st := storetest.NewOn(t, rdb)
	ctx := context.Background()
	adm := adminClient(t)
	topic := newTopic(t, adm, 3)
	group := newGroup(t, adm)

	last := map[string]position.Position{} // the topic's last position per product
	deleted := map[string]bool{}
	write := func(lsn uint64, n int) {
		var recs []*kgo.Record
		for i := range n {
			id := fmt.Sprintf("SKU-%04d", i)
			p := pos(lsn, uint32(i+1))
			if i%37 == int(lsn%37) {
				recs = append(recs, tombstoneRecord(topic, id, p))
			} else {
				recs = append(recs, levelRecord(t, topic, id, p, int64(lsn%7)))
			}
			last[id], deleted[id] = p, i%37 == int(lsn%37)
		}
		produce(t, recs...)
	}
	matches := func() bool {
		for id, want := range last {
			p, del, ok, err := st.StoredPosition(ctx, id)
			if err != nil || !ok || p != want || del != deleted[id] {
				return false
			}
		}
		return true
	}

	for lsn := uint64(1000); lsn <= 3000; lsn += 1000 {
		write(lsn, 400)
	}
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	c := startConsumer(t, topic, group, st.RequireGeneration())
	rc := rebuildConfig(topic)
	gc := DefaultGuardConfig()
	gc.Rebuild, gc.Every = rc, 200*time.Millisecond
	reg := prometheus.NewRegistry()
	guard, err := NewGuard(gc, st, testLog, reg)
	if err != nil {
		t.Fatal(err)
	}
	gctx, stopGuard := context.WithCancel(ctx)
	guarded := make(chan struct{})
	go func() {
		defer close(guarded)
		_ = guard.Run(gctx, c.CacheLost())
	}()
	t.Cleanup(func() { stopGuard(); <-guarded })
	testenv.Eventually(t, 30*time.Second, "the projection on the cluster", matches)

	t.Run("rebuild", func(t *testing.T) {
		gen, _ := st.ActiveGeneration(ctx)
		before := storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), gen))
		stats, err := Run(ctx, rc, st, testLog, reg)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Previous != gen || stats.Generation == gen {
			t.Fatalf("rebuild stats = %+v from generation %d", stats, gen)
		}
		if after := storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), stats.Generation)); !maps.Equal(before, after) {
			t.Errorf("rebuilt generation differs: %d keys before, %d after", len(before), len(after))
		}
		if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), gen))); n != 0 {
			t.Errorf("%d keys of the old generation left", n)
		}
	})

	t.Run("a master loses its data", func(t *testing.T) {
		node := redis.NewClient(&redis.Options{Addr: addrs[2]})
		defer node.Close()
		if err := node.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		write(4000, 400)
		testenv.Eventually(t, 30*time.Second, "the cache rebuilt after the loss", matches)
		if ok, err := st.Initialized(ctx); err != nil || !ok {
			t.Fatalf("initialized = %v %v", ok, err)
		}
		if n := counterValue(t, guard.lost); n != 1 {
			t.Errorf("losses counted = %v, want 1", n)
		}
	})

	t.Run("a switch left half done", func(t *testing.T) {
		// A rebuild that died between the buckets' copies of the pointer
		// and the readers' pointer: writers of bucket 5 would go on
		// writing a generation readers never read.
		if err := rdb.Set(ctx, st.Prefix()+"generation:{b5}", "99", 0).Err(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "the guard to rebuild", func() bool {
			ps, err := st.Pointer(ctx)
			return err == nil && ps == stockstore.PointerActive && counterValue(t, guard.recovered) == 2
		})
		write(5000, 400)
		testenv.Eventually(t, 30*time.Second, "the projection after the rebuild", matches)
		if n := counterValue(t, guard.lost); n != 2 {
			t.Errorf("losses counted = %v, want 2", n)
		}
	})
}
