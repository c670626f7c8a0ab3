package stockstore_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
)

var quiet = slog.New(slog.DiscardHandler)

// One rebuild at a time per prefix: a second waits for the first to close,
// and the status sees the lock while one runs.
func TestRebuildOneAtATime(t *testing.T) {
	st, _ := storetest.New(t)
	ctx := context.Background()
	rb, _, err := st.BeginRebuild(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.BeginRebuild(ctx, quiet); !errors.Is(err, stockstore.ErrRebuildRunning) {
		t.Fatalf("a second rebuild: %v, want ErrRebuildRunning", err)
	}
	if locked, err := st.RebuildLocked(ctx); err != nil || !locked {
		t.Fatalf("locked while a rebuild runs = %v %v", locked, err)
	}
	rb.Close(ctx)
	if locked, err := st.RebuildLocked(ctx); err != nil || locked {
		t.Fatalf("locked after the rebuild closed = %v %v", locked, err)
	}
	rb2, _, err := st.BeginRebuild(ctx, quiet)
	if err != nil {
		t.Fatalf("a rebuild after the first closed: %v", err)
	}
	rb2.Close(ctx)
}

// A rebuild that gives up before its switch leaves nothing behind: its
// generation is deleted, live writes stop going to it, readers never saw it.
func TestRebuildClosedBeforeSwitchLeavesNothing(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	gen, _, err := st.InitGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live := st.RequireGeneration()
	apply(t, live, snap("A", pos(10, 1), 1))
	rb, _, err := st.BeginRebuild(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, rb.Store(), snap("B", pos(10, 2), 2))
	if err := rb.Mirror(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, live, snap("C", pos(11, 1), 3)) // mirrored into the new generation
	if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), rb.Generation()))); n == 0 {
		t.Fatal("nothing written to the new generation")
	}
	rb.Close(ctx)

	if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), rb.Generation()))); n != 0 {
		t.Errorf("%d keys of the abandoned generation left", n)
	}
	apply(t, live, snap("D", pos(12, 1), 4))
	if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), rb.Generation()))); n != 0 {
		t.Errorf("a live write after the rebuild gave up reached its generation (%d keys)", n)
	}
	if g, err := st.ActiveGeneration(ctx); err != nil || g != gen {
		t.Errorf("active generation = %d %v, want %d", g, err, gen)
	}
	for _, k := range storetest.Keys(t, rdb, st.Prefix()) {
		if k == st.Prefix()+"generation:next" || k == st.Prefix()+"rebuild:lock" {
			t.Errorf("key %s left", k)
		}
	}
	if _, err := st.Get(ctx, "B"); !errors.Is(err, stockstore.ErrNotFound) {
		t.Errorf("B, written by the abandoned rebuild only: %v, want not found", err)
	}
}

// Switch refuses, changing nothing, when live writes may have missed the new
// generation (never mirrored, or the pointer lost) or another rebuild may
// own the prefix (the lock lost); a generation whose lock is no longer
// held is not deleted on close, since its number may be another's.
func TestRebuildRefusesToSwitch(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mirror  bool
		lose    string // the key deleted before the switch
		want    error  // nil: any error
		deleted bool   // Close deletes the generation
	}{
		{name: "not mirrored", deleted: true},
		{name: "next pointer lost", mirror: true, lose: "generation:next", want: stockstore.ErrNextLost, deleted: true},
		{name: "lock lost", mirror: true, lose: "rebuild:lock", want: stockstore.ErrRebuildLockLost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, rdb := storetest.New(t)
			ctx := context.Background()
			gen, _, err := st.InitGeneration(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rb, _, err := st.BeginRebuild(ctx, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer rb.Close(ctx)
			apply(t, rb.Store(), snap("A", pos(10, 1), 1))
			if tt.mirror {
				if err := rb.Mirror(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if tt.lose != "" {
				if err := rdb.Del(ctx, st.Prefix()+tt.lose).Err(); err != nil {
					t.Fatal(err)
				}
			}
			_, err = rb.Switch(ctx)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("switch: %v, want %v", err, tt.want)
			}
			if g, err := st.ActiveGeneration(ctx); err != nil || g != gen {
				t.Fatalf("active generation after a refused switch = %d %v, want %d", g, err, gen)
			}
			rb.Close(ctx)
			left := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), rb.Generation())))
			if tt.deleted != (left == 0) {
				t.Errorf("%d keys of the new generation left after close, want deleted %v", left, tt.deleted)
			}
		})
	}
}

// The old generation stays readable for RetireDelay after the switch
// (readers cache the active generation), then goes; the new one stays.
func TestRebuildRetiresTheOldGeneration(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	old, _, err := st.InitGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, st, snap("A", pos(10, 1), 1))
	rb, _, err := st.BeginRebuild(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close(ctx)
	apply(t, rb.Store(), snap("A", pos(10, 1), 1))
	if err := rb.Mirror(ctx); err != nil {
		t.Fatal(err)
	}
	prev, err := rb.Switch(ctx)
	if err != nil || prev != old {
		t.Fatalf("switch = %d %v, want previous %d", prev, err, old)
	}
	switched := time.Now()
	if err := rb.Retire(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(switched); d < stockstore.RetireDelay {
		t.Errorf("old generation deleted %s after the switch, want at least %s", d, stockstore.RetireDelay)
	}
	if n := len(storetest.Dump(t, rdb, storetest.GenPrefix(st.Prefix(), old))); n != 0 {
		t.Errorf("%d keys of the old generation left", n)
	}
	if p, err := st.Get(ctx, "A"); err != nil || p.OnHand != 1 {
		t.Errorf("A after retiring = %+v %v", p, err)
	}
}

// A rebuild after a loss re-checks it under the lock (another process may
// have rebuilt: then it changes nothing), clears what survived, and has no
// old generation to retire.
func TestLostRebuild(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, st, snap("A", pos(10, 1), 1))
	if _, _, err := st.BeginLostRebuild(ctx, quiet); !errors.Is(err, stockstore.ErrGenerationActive) {
		t.Fatalf("a lost rebuild with a generation active: %v, want ErrGenerationActive", err)
	}
	if locked, _ := st.RebuildLocked(ctx); locked {
		t.Fatal("the lock stayed after a lost rebuild found nothing to do")
	}
	before := storetest.Keys(t, rdb, st.Prefix())
	if len(before) < 2 {
		t.Fatalf("the refused lost rebuild deleted keys: %v", before)
	}

	if err := rdb.Del(ctx, st.Prefix()+"generation").Err(); err != nil { // the loss; A survives
		t.Fatal(err)
	}
	rb, _, err := st.BeginLostRebuild(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close(ctx)
	for _, k := range storetest.Keys(t, rdb, st.Prefix()) {
		if !slices.Contains([]string{st.Prefix() + "generation:last", st.Prefix() + "rebuild:lock"}, k) {
			t.Errorf("key %s survived the lost rebuild's start", k)
		}
	}
	apply(t, rb.Store(), snap("B", pos(11, 1), 2))
	if err := rb.Mirror(ctx); err != nil {
		t.Fatal(err)
	}
	if prev, err := rb.Switch(ctx); err != nil || prev != 0 {
		t.Fatalf("switch = %d %v, want previous 0", prev, err)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := rb.Retire(rctx, time.Hour); err != nil {
		t.Fatalf("retire after a loss: %v, want nothing to wait for", err)
	}
	if p, err := st.Get(ctx, "B"); err != nil || p.OnHand != 2 {
		t.Errorf("B after the switch = %+v %v", p, err)
	}
}
