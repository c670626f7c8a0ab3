package stockstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
)

// rows builds a snapshot whose warehouse statuses are given by name.
func rows(id string, p position.Position, statuses map[string]string) stockstore.Snapshot {
	s := stockstore.Snapshot{ProductID: id, Position: p, Status: "IN_STOCK", CommitTime: commitTime}
	for _, wh := range slices.Sorted(func(yield func(string) bool) {
		for k := range statuses {
			if !yield(k) {
				return
			}
		}
	}) {
		s.Warehouses = append(s.Warehouses, stockstore.Warehouse{WarehouseID: wh, Status: statuses[wh]})
	}
	return s
}

func apply(t *testing.T, st *stockstore.Store, snaps ...stockstore.Snapshot) {
	t.Helper()
	if _, err := st.Apply(context.Background(), snaps); err != nil {
		t.Fatal(err)
	}
}

func allLow(t *testing.T, st *stockstore.Store, wh string, page int) []string {
	t.Helper()
	var out []string
	after := ""
	for i := 0; ; i++ {
		ids, next, err := st.LowStock(context.Background(), wh, after, page)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids...)
		if next == "" {
			return out
		}
		if i > 100 {
			t.Fatal("LowStock does not end")
		}
		after = next
	}
}

func TestLowStock(t *testing.T) {
	st, _ := storetest.New(t)
	const low, out, ok = stockstore.StatusLowStock, stockstore.StatusOutOfStock, "IN_STOCK"
	apply(t, st,
		rows("P3", pos(10, 1), map[string]string{"W1": low, "W2": ok}),
		rows("P1", pos(10, 2), map[string]string{"W1": out, "W2": low}),
		rows("P2", pos(10, 3), map[string]string{"W1": ok}),
		rows("P4", pos(10, 4), map[string]string{"W1": low}),
		rows("P5", pos(10, 5), map[string]string{"W1": low}),
	)
	for _, page := range []int{1, 2, 3, 10} {
		if got := allLow(t, st, "W1", page); !slices.Equal(got, []string{"P1", "P3", "P4", "P5"}) {
			t.Errorf("page %d: W1 low = %v", page, got)
		}
	}
	// Restocked, moved, deleted, and a stale snapshot that must not count.
	apply(t, st,
		rows("P3", pos(11, 1), map[string]string{"W1": ok, "W2": out}),
		stockstore.Snapshot{ProductID: "P4", Position: pos(11, 2), Deleted: true},
		rows("P5", pos(9, 1), map[string]string{"W1": ok}),
		rows("P1", pos(11, 3), map[string]string{"W1": out}),
	)
	if got := allLow(t, st, "W1", 2); !slices.Equal(got, []string{"P1", "P5"}) {
		t.Errorf("W1 low after changes = %v, want [P1 P5]", got)
	}
	if got := allLow(t, st, "W2", 2); !slices.Equal(got, []string{"P3"}) {
		t.Errorf("W2 low after changes = %v, want [P3]", got)
	}
	if got := allLow(t, st, "W-NONE", 2); len(got) != 0 {
		t.Errorf("unknown warehouse = %v", got)
	}
	if _, _, err := st.LowStock(context.Background(), "W1", "", 0); err == nil {
		t.Error("limit 0 accepted")
	}
}

func TestChanges(t *testing.T) {
	st, _ := storetest.New(t)
	ctx := context.Background()
	head, err := st.ChangesHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, st, snap("A", pos(10, 1), 1), snap("B", pos(10, 2), 1), snap("C", pos(10, 3), 1))
	got, next, err := st.Changes(ctx, head, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ProductID != "A" || got[1].ProductID != "B" || got[1].Position != pos(10, 2) {
		t.Fatalf("first page = %+v", got)
	}
	// A changes again, B is deleted, C replays stale: A and B move to the
	// end, C stays where it was.
	apply(t, st, snap("A", pos(11, 1), 2), tomb("B", pos(11, 2)), snap("C", pos(9, 1), 0))
	got, next2, err := st.Changes(ctx, next, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []stockstore.Change{{"C", pos(10, 3), false}, {"A", pos(11, 1), false}, {"B", pos(11, 2), true}}
	if !slices.Equal(got, want) {
		t.Fatalf("second page = %+v, want %+v", got, want)
	}
	if got, n, err := st.Changes(ctx, next2, 10); err != nil || len(got) != 0 || n != next2 {
		t.Fatalf("at the head: %+v %q %v", got, n, err)
	}
	// From the start: each product once.
	all, _, err := st.Changes(ctx, "", 100)
	if err != nil || len(all) != 3 {
		t.Fatalf("from the start: %+v %v", all, err)
	}

	t.Run("trimmed cursor expires", func(t *testing.T) {
		if n, err := st.TrimChanges(ctx, 1); err != nil || n != 2 {
			t.Fatalf("trim = %d, %v; want 2 removed", n, err)
		}
		if _, _, err := st.Changes(ctx, head, 10); !errors.Is(err, stockstore.ErrCursorExpired) {
			t.Fatalf("old cursor: %v, want ErrCursorExpired", err)
		}
		if got, _, err := st.Changes(ctx, next, 10); !errors.Is(err, stockstore.ErrCursorExpired) {
			t.Fatalf("cursor inside trimmed range: %+v %v", got, err)
		}
		if got, _, err := st.Changes(ctx, next2, 10); err != nil || len(got) != 0 {
			t.Fatalf("cursor at head after trim: %+v %v", got, err)
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		for _, c := range []string{"x", "1", "1:-2", ":"} {
			if _, _, err := st.Changes(ctx, c, 1); !errors.Is(err, stockstore.ErrBadCursor) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
			}
		}
	})
}

// A rebuild writes a pinned generation while the active one serves, then
// switches: reads follow, cursors of the old generation expire, and deleting
// the old generation leaves the new one alone.
func TestGenerations(t *testing.T) {
	st, rdb := storetest.New(t)
	ctx := context.Background()
	gen, created, err := st.InitGeneration(ctx)
	if err != nil || !created || gen != 1 {
		t.Fatalf("init = %d %v %v", gen, created, err)
	}
	if g, created, _ := st.InitGeneration(ctx); g != 1 || created {
		t.Fatalf("second init = %d %v", g, created)
	}
	apply(t, st, snap("A", pos(10, 1), 1))
	cursor, _ := st.ChangesHead(ctx)

	g2, err := st.NewGeneration(ctx)
	if err != nil || g2 != 2 {
		t.Fatalf("new generation = %d %v", g2, err)
	}
	next := st.InGeneration(g2)
	apply(t, next, snap("A", pos(10, 1), 1), snap("B", pos(10, 2), 7))
	if _, err := st.Get(ctx, "B"); !errors.Is(err, stockstore.ErrNotFound) {
		t.Fatalf("B visible before the switch: %v", err)
	}
	prev, err := st.Activate(ctx, g2)
	if err != nil || prev != 1 {
		t.Fatalf("activate = %d %v", prev, err)
	}
	if p, err := st.Get(ctx, "B"); err != nil || p.OnHand != 7 {
		t.Fatalf("B after the switch = %+v %v", p, err)
	}
	// Writes of an unpinned store go to the active generation.
	apply(t, st, snap("C", pos(11, 1), 3))
	if _, err := next.Get(ctx, "C"); err != nil {
		t.Fatalf("C not in the new generation: %v", err)
	}
	if _, _, err := st.Changes(ctx, cursor, 10); !errors.Is(err, stockstore.ErrCursorExpired) {
		t.Fatalf("old generation's cursor: %v, want ErrCursorExpired", err)
	}
	if _, err := st.DeleteGeneration(ctx, g2); err == nil {
		t.Fatal("deleting the active generation was allowed")
	}
	if n, err := st.DeleteGeneration(ctx, 1); err != nil || n == 0 {
		t.Fatalf("delete generation 1 = %d %v", n, err)
	}
	for _, k := range storetest.Keys(t, rdb, st.Prefix()) {
		if !slices.Contains([]string{st.Prefix() + "generation", st.Prefix() + "generation:last"}, k) &&
			!startsWith(k, st.Prefix()+"g2:") {
			t.Errorf("key %s left after deleting generation 1", k)
		}
	}
	if p, err := st.Get(ctx, "A"); err != nil || p.OnHand != 1 {
		t.Fatalf("A after deleting the old generation = %+v %v", p, err)
	}
}

func startsWith(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

var _ = fmt.Sprint
