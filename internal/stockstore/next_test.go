package stockstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
)

// A rebuild names the generation it is about to switch to (Mirror); from
// then on the live projector's writes reach it as well, so after the switch
// it shows every product at least as new as the retired generation did,
// even those the rebuild's own replay never wrote.
func TestWritesReachTheNextGeneration(t *testing.T) {
	st, _ := storetest.New(t)
	testWritesReachTheNextGeneration(t, st)
}

func testWritesReachTheNextGeneration(t *testing.T, st *stockstore.Store) {
	ctx := context.Background()
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	live := st.RequireGeneration()
	mark := func(off int64) stockstore.Watermark {
		return stockstore.Watermark{Topic: "levels", Partition: 3, Offset: off, Position: pos(uint64(off), 1)}
	}
	if _, err := live.Apply(ctx, []stockstore.Snapshot{snap("A", pos(10, 1), 1), snap("B", pos(10, 2), 1)}, mark(10)); err != nil {
		t.Fatal(err)
	}

	rb, _, err := st.BeginRebuild(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close(ctx)
	rebuilt := rb.Store()
	// Before Mirror the live writes stay in the active generation.
	if _, err := live.Apply(ctx, []stockstore.Snapshot{snap("A", pos(11, 1), 2)}, mark(11)); err != nil {
		t.Fatal(err)
	}
	if _, err := rebuilt.Get(ctx, "A"); !errors.Is(err, stockstore.ErrNotFound) {
		t.Fatalf("A in the next generation before Mirror: %v, want not found", err)
	}

	if err := rb.Mirror(ctx); err != nil {
		t.Fatal(err)
	}
	// The rebuild's replay writes an old snapshot of B; the live projector
	// a newer A, a newer B and a tombstone of C.
	if _, err := rebuilt.Apply(ctx, []stockstore.Snapshot{snap("B", pos(10, 2), 1)}); err != nil {
		t.Fatal(err)
	}
	applied, err := live.Apply(ctx, []stockstore.Snapshot{snap("A", pos(12, 1), 3), snap("B", pos(12, 2), 3), tomb("C", pos(12, 3))}, mark(12))
	if err != nil {
		t.Fatal(err)
	}
	if count(applied) != 3 {
		t.Fatalf("live apply: %v, want all applied", applied)
	}
	// The mirror is position-checked on its own: an older live write does
	// not overwrite what the replay put there.
	if _, err := rebuilt.Apply(ctx, []stockstore.Snapshot{snap("D", pos(20, 1), 9)}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Apply(ctx, []stockstore.Snapshot{snap("D", pos(13, 1), 4)}); err != nil {
		t.Fatal(err)
	}

	// Switch extends the pointer first: it refuses one that is lost.
	if _, err := rb.Switch(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int64{"A": 3, "B": 3, "D": 9} {
		p, err := st.Get(ctx, id)
		if err != nil || p.OnHand != want {
			t.Fatalf("%s after the switch = %+v, %v; want on_hand %d", id, p, err, want)
		}
	}
	if _, err := st.Get(ctx, "C"); !errors.Is(err, stockstore.ErrNotFound) {
		t.Fatalf("C (deleted while mirrored) after the switch: %v, want not found", err)
	}
	marks, err := st.Watermarks(ctx, "levels")
	if err != nil || len(marks) != 1 || marks[0].Offset != 12 {
		t.Fatalf("watermarks after the switch = %+v, %v; want partition 3 at 12", marks, err)
	}
	// The switch cleared the pointer: nothing is mirrored any more.
	if err := st.ExtendNext(ctx, rb.Generation(), time.Minute); !errors.Is(err, stockstore.ErrNextLost) {
		t.Fatalf("extending after the switch: %v, want ErrNextLost", err)
	}
}

// A pointer that expired (a stalled rebuild) or was lost is reported, so the
// rebuild does not switch to a generation writes stopped reaching; one that
// a rebuild clears stops the mirror at once.
func TestNextGenerationLostOrCleared(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := st.NewGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetNext(ctx, next, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.ExtendNext(ctx, next+1, time.Minute); !errors.Is(err, stockstore.ErrNextLost) {
		t.Fatalf("extending another generation's pointer: %v, want ErrNextLost", err)
	}
	if err := st.ClearNext(ctx, next); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RequireGeneration().Apply(ctx, []stockstore.Snapshot{snap("A", pos(10, 1), 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.InGeneration(next).Get(ctx, "A"); !errors.Is(err, stockstore.ErrNotFound) {
		t.Fatalf("A in the next generation after ClearNext: %v, want not found", err)
	}

	if err := st.SetNext(ctx, next, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(ctx, st.Prefix()+"generation:next").Val() == 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := st.ExtendNext(ctx, next, time.Minute); !errors.Is(err, stockstore.ErrNextLost) {
		t.Fatalf("extending an expired pointer: %v, want ErrNextLost", err)
	}
}
