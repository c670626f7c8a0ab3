package stockstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
)

// The store on a real Redis Cluster of three masters: every write script
// touches one slot (a Cluster refuses anything else), the keys spread over
// the masters, and the reads that merge buckets (low stock, changes,
// watermarks) answer as on a single node.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	rdb, addrs := storetest.Cluster(t)
	ctx := context.Background()
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = fmt.Sprintf("SKU-%04d", i)
	}
	// lowIn is whether product i is low in WH-01.
	lowIn := func(i int) bool { return i%3 == 0 }
	snapsAt := func(lsn uint64, onHand int64) []stockstore.Snapshot {
		out := make([]stockstore.Snapshot, len(ids))
		for i, id := range ids {
			s := snap(id, pos(lsn, uint32(i+1)), onHand)
			if lowIn(i) {
				s.Warehouses[0].Status = stockstore.StatusLowStock
			}
			out[i] = s
		}
		return out
	}

	t.Run("writes reach the next generation", func(t *testing.T) {
		testWritesReachTheNextGeneration(t, storetest.NewOn(t, rdb))
	})

	t.Run("apply and read", func(t *testing.T) {
		st := storetest.NewOn(t, rdb)
		if _, _, err := st.InitGeneration(ctx); err != nil {
			t.Fatal(err)
		}
		head, err := st.ChangesHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		applied, err := st.Apply(ctx, snapsAt(10, 5), stockstore.Watermark{Topic: "levels", Partition: 0, Offset: 9, Position: pos(10, 1)},
			stockstore.Watermark{Topic: "levels", Partition: 5, Offset: 7, Position: pos(10, 2)})
		if err != nil {
			t.Fatal(err)
		}
		if n := count(applied); n != len(ids) {
			t.Fatalf("%d applied, want %d", n, len(ids))
		}
		// Older snapshots are stale, in every bucket.
		applied, err = st.Apply(ctx, snapsAt(9, 1))
		if err != nil || count(applied) != 0 {
			t.Fatalf("stale replay applied %d: %v", count(applied), err)
		}
		ps, missing, err := st.GetMany(ctx, ids)
		if err != nil || len(missing) > 0 || len(ps) != len(ids) {
			t.Fatalf("GetMany: %d found, missing %v, %v", len(ps), missing, err)
		}
		for i, p := range ps {
			if p.ProductID != ids[i] || p.OnHand != 5 {
				t.Fatalf("product %d = %+v", i, p)
			}
		}
		if _, err := st.Apply(ctx, []stockstore.Snapshot{tomb(ids[1], pos(11, 1))}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, ids[1]); !errors.Is(err, stockstore.ErrNotFound) {
			t.Fatalf("deleted product: %v", err)
		}
		if p, deleted, ok, err := st.StoredPosition(ctx, ids[1]); err != nil || !ok || !deleted || p != pos(11, 1) {
			t.Fatalf("tombstone position = %v %v %v %v", p, deleted, ok, err)
		}

		var wantLow []string
		for i, id := range ids {
			if lowIn(i) {
				wantLow = append(wantLow, id)
			}
		}
		if got := allLow(t, st, "WH-01", 7); !slices.Equal(got, wantLow) {
			t.Fatalf("low stock across buckets: %d ids, want %d (%v...)", len(got), len(wantLow), got[:min(5, len(got))])
		}

		marks, err := st.Watermarks(ctx, "levels")
		if err != nil || len(marks) != 2 || marks[0].Partition != 0 || marks[1].Partition != 5 || marks[1].Offset != 7 {
			t.Fatalf("watermarks = %+v %v", marks, err)
		}

		// Following the change index from the head, in small pages, gives
		// every product once, the deleted one as deleted.
		seen := map[string]stockstore.Change{}
		cursor := head
		for range 1000 {
			got, next, err := st.Changes(ctx, cursor, 13)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range got {
				if _, dup := seen[c.ProductID]; dup {
					t.Fatalf("%s twice in the change index", c.ProductID)
				}
				seen[c.ProductID] = c
			}
			if len(got) == 0 {
				if next != cursor {
					t.Fatalf("at the head the cursor moved from %q to %q", cursor, next)
				}
				break
			}
			cursor = next
		}
		if len(seen) != len(ids) || !seen[ids[1]].Deleted || seen[ids[2]].Position != pos(10, 3) {
			t.Fatalf("changes: %d products, %s = %+v", len(seen), ids[1], seen[ids[1]])
		}
		// A later change shows after the cursor, and only it.
		if _, err := st.Apply(ctx, []stockstore.Snapshot{snap(ids[7], pos(12, 1), 9)}); err != nil {
			t.Fatal(err)
		}
		got, _, err := st.Changes(ctx, cursor, 100)
		if err != nil || len(got) != 1 || got[0].ProductID != ids[7] {
			t.Fatalf("after the cursor: %+v %v", got, err)
		}
		if n, err := st.TrimChanges(ctx, 32); err != nil || n == 0 {
			t.Fatalf("trim = %d %v", n, err)
		}
		if _, _, err := st.Changes(ctx, head, 10); !errors.Is(err, stockstore.ErrCursorExpired) {
			t.Fatalf("cursor below the trimmed window: %v, want ErrCursorExpired", err)
		}
		if _, _, err := st.Changes(ctx, "1:5", 10); !errors.Is(err, stockstore.ErrBadCursor) {
			t.Fatalf("a single-node cursor on a Cluster: %v, want ErrBadCursor", err)
		}

		// The keys are spread over every master.
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			n, err := c.DBSize(ctx).Result()
			c.Close()
			if err != nil || n < 10 {
				t.Errorf("master %s holds %d keys (%v)", a, n, err)
			}
		}
	})

	t.Run("generations", func(t *testing.T) {
		st := storetest.NewOn(t, rdb)
		if _, _, err := st.InitGeneration(ctx); err != nil {
			t.Fatal(err)
		}
		apply(t, st, snapsAt(10, 1)...)
		cursor, _ := st.ChangesHead(ctx)
		g2, err := st.NewGeneration(ctx)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, st.InGeneration(g2), snapsAt(10, 2)...)
		if p, _ := st.Get(ctx, ids[0]); p.OnHand != 1 {
			t.Fatalf("the new generation shows before the switch: %+v", p)
		}
		if prev, err := st.Activate(ctx, g2); err != nil || prev != 1 {
			t.Fatalf("activate = %d %v", prev, err)
		}
		// Writers of every bucket follow the switch at once.
		apply(t, st, snapsAt(11, 3)...)
		ps, _, err := st.InGeneration(g2).GetMany(ctx, ids)
		if err != nil || len(ps) != len(ids) {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.OnHand != 3 {
				t.Fatalf("%s = %d in the new generation, want 3", p.ProductID, p.OnHand)
			}
		}
		if _, _, err := st.Changes(ctx, cursor, 10); !errors.Is(err, stockstore.ErrCursorExpired) {
			t.Fatalf("old generation's cursor: %v", err)
		}
		before := storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), g2))
		if n, err := st.DeleteGeneration(ctx, 1); err != nil || n < len(ids) {
			t.Fatalf("delete generation 1 = %d %v", n, err)
		}
		if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), 1))); n != 0 {
			t.Fatalf("%d keys of generation 1 left on the masters", n)
		}
		if after := storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), g2)); !maps.Equal(before, after) {
			t.Fatal("deleting generation 1 touched generation 2")
		}
	})

	t.Run("pointer copies left split", func(t *testing.T) {
		st := storetest.NewOn(t, rdb)
		if _, _, err := st.InitGeneration(ctx); err != nil {
			t.Fatal(err)
		}
		if ps, err := st.Pointer(ctx); err != nil || ps != stockstore.PointerActive {
			t.Fatalf("pointer = %v %v, want active", ps, err)
		}
		apply(t, st, snapsAt(10, 1)...)
		// A rebuild that died between switching the buckets' copies and the
		// readers' pointer: here one copy already points elsewhere.
		if err := rdb.Set(ctx, st.Prefix()+"generation:{b3}", "7", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if ps, err := st.Pointer(ctx); err != nil || ps != stockstore.PointerSplit {
			t.Fatalf("pointer = %v %v, want split", ps, err)
		}
		if ok, err := st.Initialized(ctx); err != nil || !ok {
			t.Fatalf("initialized = %v %v; a split pointer still exists", ok, err)
		}
		if _, err := st.DeleteAllGenerations(ctx); err != nil {
			t.Fatalf("deleting every generation of a split cache: %v", err)
		}
		if ps, err := st.Pointer(ctx); err != nil || ps != stockstore.PointerMissing {
			t.Fatalf("pointer after deleting = %v %v, want missing", ps, err)
		}
	})

	t.Run("a master loses its data", func(t *testing.T) {
		st := storetest.NewOn(t, rdb)
		if _, _, err := st.InitGeneration(ctx); err != nil {
			t.Fatal(err)
		}
		live := st.RequireGeneration()
		if _, err := live.Apply(ctx, snapsAt(10, 1)); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Initialized(ctx); err != nil || !ok {
			t.Fatalf("initialized = %v %v", ok, err)
		}
		// One master restarted without persistence: FLUSHALL is the same
		// to its slots (the cluster is this test's own).
		c := redis.NewClient(&redis.Options{Addr: addrs[1]})
		defer c.Close()
		if err := c.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Initialized(ctx); err != nil || ok {
			t.Fatalf("initialized after a master lost its data = %v %v, want false", ok, err)
		}
		if _, err := live.Apply(ctx, snapsAt(11, 2)); !errors.Is(err, stockstore.ErrNoGeneration) {
			t.Fatalf("apply after the loss: %v, want ErrNoGeneration", err)
		}
		if _, err := st.DeleteAllGenerations(ctx); err != nil {
			t.Fatal(err)
		}
		for _, k := range storetest.Keys(t, rdb, st.Prefix()) {
			if k != st.Prefix()+"generation:last" {
				t.Errorf("key %s left after deleting every generation", k)
			}
		}
		if _, err := live.Apply(ctx, snapsAt(11, 2)); !errors.Is(err, stockstore.ErrNoGeneration) {
			t.Fatalf("apply with no generation anywhere: %v, want ErrNoGeneration", err)
		}
	})
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
