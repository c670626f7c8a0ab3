package statestore

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/stockpipe/stock/producer/change"
)

// model is the state as a plain map, what the view must always show.
type model map[string]map[string]change.Row

func (m model) rows(p string) []change.Row {
	var out []change.Row
	for _, r := range m[p] {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].WarehouseID < out[j].WarehouseID })
	return out
}

func (m model) count() (rows, products int64) {
	for _, ws := range m {
		if len(ws) > 0 {
			products++
			rows += int64(len(ws))
		}
	}
	return rows, products
}

// The view shows every change at once, whether its period is pending,
// handed over, applied or evicted; the store, once everything is applied,
// equals the view. A tiny budget forces evictions all along.
func TestViewAgreesWithAModelThroughPeriods(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	v := s.NewView(2<<10, 0, 0)
	m := model{}
	var inFlight []*Changes
	apply := func(mark string) {
		for _, c := range inFlight {
			must(t, s.Apply(c, "me", mark))
		}
		inFlight = nil
	}
	check := func(step int) {
		for p := 0; p < 12; p++ {
			id := fmt.Sprintf("P%d", p)
			got, err := v.ProductRows(id)
			must(t, err)
			if want := m.rows(id); !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: %s = %+v, want %+v", step, id, got, want)
			}
		}
		if r, p := m.count(); v.Rows() != r || v.Products() != p {
			t.Fatalf("step %d: view counts %d rows %d products, want %d %d", step, v.Rows(), v.Products(), r, p)
		}
	}
	for step := 0; step < 400; step++ {
		p := fmt.Sprintf("P%d", step*7%12)
		w := fmt.Sprintf("W%d", step*5%4)
		switch step % 9 {
		case 0, 1, 2, 3, 4:
			r := row(p, w, int32(step))
			before, err := v.Put(r)
			must(t, err)
			old, had := m[p][w]
			if (before != nil) != had || (had && *before != old) {
				t.Fatalf("step %d: Put returned %+v, model had %+v %v", step, before, old, had)
			}
			if m[p] == nil {
				m[p] = map[string]change.Row{}
			}
			m[p][w] = r
		case 5, 6:
			before, err := v.Delete(change.Key{ProductID: p, WarehouseID: w})
			must(t, err)
			if _, had := m[p][w]; (before != nil) != had {
				t.Fatalf("step %d: Delete returned %+v, model had it: %v", step, before, had)
			}
			delete(m[p], w)
		case 7:
			must(t, v.Clear(p))
			delete(m, p)
		case 8:
			// A period ends: handed over, maybe applied at once, maybe
			// left in flight for a while (the committer busy).
			if c := v.Pending(); c != nil {
				if step%2 == 0 {
					c = nil // the committer was busy: the period goes on
				} else {
					inFlight = append(inFlight, c)
					v.Advance(c)
				}
			}
			if step%4 == 1 {
				apply(fmt.Sprintf("m%d", step))
			}
		}
		check(step)
	}
	inFlight = append(inFlight, v.Pending())
	v.Advance(inFlight[len(inFlight)-1])
	apply("end")
	for p := range m {
		got, err := s.ReadProduct(p)
		must(t, err)
		if want := m.rows(p); !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
			t.Fatalf("store: %s = %+v, want %+v", p, got, want)
		}
	}
	rows, products, err := s.Count()
	must(t, err)
	if r, p := m.count(); rows != r || products != p {
		t.Fatalf("store counts %d %d, want %d %d", rows, products, r, p)
	}
	meta, _, err := s.Meta()
	must(t, err)
	if !meta.Clean || meta.Mark != "end" || meta.Rows != rows || meta.Products != products {
		t.Fatalf("meta %+v, want clean at end with the counts", meta)
	}
}

// Changes handed over are never modified by later changes: the committer
// may encode them while the handler goes on.
func TestHandedOverChangesAreFrozen(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	v := s.NewView(1<<20, 0, 0)
	_, err := v.Put(row("P", "W1", 1))
	must(t, err)
	c := v.Pending()
	v.Advance(c)
	_, err = v.Put(row("P", "W1", 2))
	must(t, err)
	_, err = v.Put(row("P", "W2", 3))
	must(t, err)
	if got := c.entries[0].rows; len(got) != 1 || got[0].OnHand != 1 {
		t.Fatalf("the handed-over period's rows changed: %+v", got)
	}
	must(t, s.Apply(c, "me", ""))
	if m, _, _ := s.Meta(); m.Clean {
		t.Fatal("changes applied ahead of Kafka left the store clean")
	}
	rows, err := s.ReadProduct("P")
	must(t, err)
	if len(rows) != 1 || rows[0].OnHand != 1 {
		t.Fatalf("store after the first period: %+v", rows)
	}
}

// Each lists the products with rows as the view shows them: created in
// memory and not yet stored, stored, but not removed in memory.
func TestViewEach(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ld := s.NewLoader("me")
	for _, p := range []string{"A", "B", "C"} {
		must(t, ld.SetProduct(p, []change.Row{row(p, "W", 1)}, 0))
	}
	must(t, ld.Finish("m", 3, 3))
	ld.Close()
	v := s.NewView(1<<20, 3, 3)
	must(t, v.Clear("B"))
	_, err := v.Put(row("D", "W", 1))
	must(t, err)
	var got []string
	must(t, v.Each(func(p string) error {
		if rows, _ := v.ProductRows(p); len(rows) > 0 {
			got = append(got, p)
		}
		return nil
	}))
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"A", "C", "D"}) {
		t.Fatalf("Each: %v", got)
	}
}

// A view within budget keeps what it read; evicted products are read again
// from the store, as they were.
func TestViewEvictsWithinBudget(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ld := s.NewLoader("me")
	for p := 0; p < 200; p++ {
		id := fmt.Sprintf("P%03d", p)
		must(t, ld.SetProduct(id, []change.Row{row(id, "W1", int32(p)), row(id, "W2", 1)}, 0))
	}
	must(t, ld.Finish("m", 400, 200))
	ld.Close()
	v := s.NewView(16<<10, 400, 200)
	for round := 0; round < 2; round++ {
		for p := 0; p < 200; p++ {
			rows, err := v.ProductRows(fmt.Sprintf("P%03d", p))
			must(t, err)
			if len(rows) != 2 || rows[0].OnHand != int32(p) {
				t.Fatalf("P%03d: %+v", p, rows)
			}
			if v.bytes > v.budget {
				t.Fatalf("view holds %d bytes, budget %d", v.bytes, v.budget)
			}
		}
	}
	if len(v.entries) >= 200 {
		t.Fatalf("%d products kept within a budget for far fewer", len(v.entries))
	}
}

func TestViewPutDeleteKeepsRowsSorted(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	v := s.NewView(1<<20, 0, 0)
	for _, w := range []string{"WH-03", "WH-01", "WH-02"} {
		if before, err := v.Put(row("P", w, 1)); err != nil || before != nil {
			t.Fatalf("insert %s returned before %+v, %v", w, before, err)
		}
	}
	if before, err := v.Put(row("P", "WH-02", 9)); err != nil || before == nil || before.OnHand != 1 {
		t.Fatalf("update returned before %+v, %v; want on_hand 1", before, err)
	}
	rows, err := v.ProductRows("P")
	must(t, err)
	if len(rows) != 3 || rows[0].WarehouseID != "WH-01" || rows[1].WarehouseID != "WH-02" || rows[2].WarehouseID != "WH-03" || rows[1].OnHand != 9 {
		t.Fatalf("rows = %+v", rows)
	}
	if v.Rows() != 3 || v.Products() != 1 {
		t.Fatalf("counts rows=%d products=%d", v.Rows(), v.Products())
	}
	for _, w := range []string{"WH-01", "WH-02", "WH-03"} {
		if before, err := v.Delete(change.Key{ProductID: "P", WarehouseID: w}); err != nil || before == nil {
			t.Fatalf("delete %s found nothing (%v)", w, err)
		}
	}
	if before, _ := v.Delete(change.Key{ProductID: "P", WarehouseID: "WH-01"}); before != nil {
		t.Fatal("second delete found a row")
	}
	if v.Rows() != 0 || v.Products() != 0 {
		t.Fatalf("after deletes rows=%d products=%d", v.Rows(), v.Products())
	}
}

// A product changed over and over within one period (a backlog's hot
// product in one large batch), rows removed, added back and the product
// cleared and refilled, reaches the store exactly as the view has it: Apply
// writes or deletes each changed warehouse once, with no range deletion.
func TestManyChangesInOnePeriodReachTheStore(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	v := s.NewView(1<<20, 0, 0)
	commit := func(mark string) {
		c := v.Pending()
		v.Advance(c)
		must(t, s.Apply(c, "me", mark))
	}
	for w := 0; w < 10; w++ {
		_, err := v.Put(row("HOT", fmt.Sprintf("W%02d", w), 1))
		must(t, err)
		_, err = v.Put(row("GONE", fmt.Sprintf("W%02d", w), 1))
		must(t, err)
	}
	commit("first")
	for round := 0; round < 30; round++ {
		for w := 0; w < 15; w++ {
			_, err := v.Put(row("HOT", fmt.Sprintf("W%02d", w), int32(round)))
			must(t, err)
		}
		for w := 0; w < 5; w++ {
			_, err := v.Delete(change.Key{ProductID: "HOT", WarehouseID: fmt.Sprintf("W%02d", w)})
			must(t, err)
		}
	}
	must(t, v.Clear("GONE"))
	_, err := v.Put(row("GONE", "W07", 9))
	must(t, err)
	must(t, v.Clear("GONE"))
	commit("second")

	hot, err := s.ReadProduct("HOT")
	must(t, err)
	var want []change.Row
	for w := 5; w < 15; w++ {
		want = append(want, row("HOT", fmt.Sprintf("W%02d", w), 29))
	}
	if !reflect.DeepEqual(hot, want) {
		t.Fatalf("HOT in the store = %+v, want W05..W14 of the last round", hot)
	}
	if gone, err := s.ReadProduct("GONE"); err != nil || len(gone) != 0 {
		t.Fatalf("GONE in the store = %+v, %v; want no rows", gone, err)
	}
	if rows, products, err := s.Count(); err != nil || rows != 10 || products != 1 {
		t.Fatalf("store counts %d rows %d products (%v), want 10 and 1", rows, products, err)
	}
}
