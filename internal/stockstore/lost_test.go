package stockstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
)

// A projector writes through RequireGeneration: once Redis has lost the
// pointer (flushed under it), its writes fail with ErrNoGeneration and leave
// nothing behind, instead of starting an almost empty generation 0 that
// readers would serve as the whole cache.
func TestRequireGenerationRefusesWritesWithoutPointer(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	live := st.RequireGeneration()
	mark := stockstore.Watermark{Topic: "levels", Partition: 0, Offset: 5, Position: pos(10, 1)}

	if _, err := live.Apply(ctx, []stockstore.Snapshot{snap("A", pos(10, 1), 1)}, mark); !errors.Is(err, stockstore.ErrNoGeneration) {
		t.Fatalf("apply on a Redis without generation: %v, want ErrNoGeneration", err)
	}
	if ks := storetest.Keys(t, rdb, st.Prefix()); len(ks) != 0 {
		t.Fatalf("a refused apply left keys: %v", ks)
	}

	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Apply(ctx, []stockstore.Snapshot{snap("A", pos(10, 1), 1)}, mark); err != nil {
		t.Fatalf("apply with a generation: %v", err)
	}
	if p, err := st.Get(ctx, "A"); err != nil || p.OnHand != 1 {
		t.Fatalf("A = %+v %v", p, err)
	}

	// The flush: every key of the prefix goes, the pointer with them.
	storetest.DeletePrefix(t, rdb, st.Prefix())
	if _, err := live.Apply(ctx, []stockstore.Snapshot{snap("B", pos(11, 1), 2)}, mark); !errors.Is(err, stockstore.ErrNoGeneration) {
		t.Fatalf("apply after a flush: %v, want ErrNoGeneration", err)
	}
	if _, err := st.Get(ctx, "B"); !errors.Is(err, stockstore.ErrNotFound) {
		t.Fatalf("B after a refused apply: %v, want not found", err)
	}
	// A plain store keeps the layout from before generations: it writes
	// generation 0 (what tests and old callers rely on).
	if _, err := st.Apply(ctx, []stockstore.Snapshot{snap("B", pos(11, 1), 2)}); err != nil {
		t.Fatalf("plain apply without generation: %v", err)
	}
}

// After a loss every generation's data goes, survivors included, while the
// counter stays so that the next generation has a new number.
func TestDeleteAllGenerations(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, st, snap("A", pos(10, 1), 1), rows("L", pos(10, 2), map[string]string{"WH-01": stockstore.StatusLowStock}))
	g2, err := st.NewGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, st.InGeneration(g2), snap("A", pos(10, 1), 1))
	apply(t, st.InGeneration(0), snap("Z", pos(10, 1), 1))

	if _, err := st.DeleteAllGenerations(ctx); err == nil {
		t.Fatal("deleting every generation while one is active was allowed")
	}
	if err := rdb.Del(ctx, st.Prefix()+"generation").Err(); err != nil {
		t.Fatal(err)
	}
	n, err := st.DeleteAllGenerations(ctx)
	if err != nil || n == 0 {
		t.Fatalf("delete all = %d %v", n, err)
	}
	if ks := storetest.Keys(t, rdb, st.Prefix()); !slices.Equal(ks, []string{st.Prefix() + "generation:last"}) {
		t.Fatalf("keys left: %v, want only the counter", ks)
	}
	if g, err := st.NewGeneration(ctx); err != nil || g != g2+1 {
		t.Fatalf("next generation = %d %v, want %d", g, err, g2+1)
	}
}

// A rebuild extends its lock while it runs and once more before it switches;
// a lock it no longer holds (expired, taken by another, or gone with a
// flushed Redis) is ErrRebuildLockLost, so it stops instead of switching
// readers to what may be an incomplete generation.
func TestExtendRebuildLockReportsALostLock(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	unlock, err := st.LockRebuild(ctx, "me", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock(ctx)
	if err := st.ExtendRebuildLock(ctx, "me", time.Minute); err != nil {
		t.Fatalf("extending a lock held: %v", err)
	}
	if err := st.ExtendRebuildLock(ctx, "someone else", time.Minute); !errors.Is(err, stockstore.ErrRebuildLockLost) {
		t.Fatalf("extending another owner's lock: %v, want ErrRebuildLockLost", err)
	}
	for _, k := range storetest.Keys(t, rdb, st.Prefix()) {
		if err := rdb.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.ExtendRebuildLock(ctx, "me", time.Minute); !errors.Is(err, stockstore.ErrRebuildLockLost) {
		t.Fatalf("extending a lock Redis lost: %v, want ErrRebuildLockLost", err)
	}
}
