package statestore

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stockpipe/stock/producer/change"
)

func row(p, w string, onHand int32) change.Row {
	return change.Row{ProductID: p, WarehouseID: w, OnHand: onHand, Reserved: 1, SafetyStock: 2, Incoming: -3,
		LowStockThreshold: 10, Version: 7, LastChangeKind: "adjust", LastChangeRef: "ref-" + p + w,
		UpdatedAt: time.Date(2026, 12, 5, 1, 2, 3, 456789000, time.UTC)}
}

func TestRowEncodingRoundTrips(t *testing.T) {
	for _, r := range []change.Row{
		row("SKU-1", "WH-01", 5),
		{ProductID: "p", WarehouseID: "w"}, // zero time, empty strings
		{ProductID: "p\x00é", WarehouseID: "w\x01", OnHand: -1 << 31, Reserved: 1<<31 - 1, Version: -1 << 63,
			UpdatedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), LastChangeKind: string(make([]byte, 300))},
		{ProductID: "p", WarehouseID: "w", UpdatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
	} {
		got, err := rowDecoder{}.decode(r.ProductID, r.WarehouseID, encodeRow(nil, &r))
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, r)
		}
	}
}

func TestCorruptValuesAreErrors(t *testing.T) {
	r := row("SKU-1", "WH-01", 5)
	v := encodeRow(nil, &r)
	for name, bad := range map[string][]byte{
		"empty":       nil,
		"cut short":   v[:len(v)-3],
		"extra bytes": append(append([]byte(nil), v...), 1),
		"huge string": append(encodeRow(nil, &change.Row{})[:9], 0xff, 0xff, 0xff, 0x7f),
		"out of int32": func() []byte {
			b := []byte{}
			for i := 0; i < 8; i++ {
				b = append(b, 0x80, 0x80, 0x80, 0x80, 0x20) // 2^33
			}
			return append(b, 0, 0)
		}(),
	} {
		if _, err := (rowDecoder{}).decode("p", "w", bad); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, _, err := decodeHeader("p", []byte{0x80}); err == nil {
		t.Error("a cut header decoded")
	}
}

func TestKeysKeepEachProductInOneRange(t *testing.T) {
	// Ids that are prefixes of one another, or hold the separator bytes,
	// never share a range.
	ids := []string{"A", "AB", "A\x00", "A\x01B", "B"}
	for _, a := range ids {
		pa := productPrefix(nil, a)
		end := prefixEnd(pa)
		for _, b := range ids {
			if a == b {
				continue
			}
			for _, k := range [][]byte{productKey(nil, b), rowKey(nil, b, ""), rowKey(nil, b, "\xff\xff")} {
				if string(k) >= string(pa) && string(k) < string(end) {
					t.Fatalf("key %q of %q falls in the range of %q", k, b, a)
				}
			}
		}
		p, rest, ok := splitProductKey(rowKey(nil, a, "WH"))
		if !ok || string(p) != a || string(rest) != "\x01WH" {
			t.Fatalf("split %q: %q %q %v", a, p, rest, ok)
		}
	}
}

func TestLoaderReplacesProductsAndCounts(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ld := s.NewLoader("me")
	defer ld.Close()
	must(t, ld.SetProduct("P1", []change.Row{row("P1", "W1", 1), row("P1", "W2", 2), row("P1", "W3", 3)}, 0))
	must(t, ld.SetProduct("P2", []change.Row{row("P2", "W1", 4)}, 9))
	must(t, ld.Flush())
	// Written again with fewer rows, in another batch and in the same one.
	must(t, ld.SetProduct("P1", []change.Row{row("P1", "W2", 5)}, 0))
	must(t, ld.SetProduct("P3", []change.Row{row("P3", "W1", 6)}, 0))
	must(t, ld.SetProduct("P3", nil, 0))
	must(t, ld.Flush())
	rows, products, err := s.Count()
	must(t, err)
	if rows != 2 || products != 2 {
		t.Fatalf("counted %d rows of %d products, want 2 of 2", rows, products)
	}
	must(t, ld.Finish("m1", rows, products))
	got, err := s.ReadProduct("P1")
	must(t, err)
	if len(got) != 1 || got[0].OnHand != 5 {
		t.Fatalf("P1 = %+v, want only W2=5", got)
	}
	var snaps []uint64
	must(t, s.EachProduct(func(_ string, snap uint64, _ int64) error { snaps = append(snaps, snap); return nil }))
	if !reflect.DeepEqual(snaps, []uint64{0, 9}) {
		t.Fatalf("snapshots %v", snaps)
	}
	m, ok, err := s.Meta()
	must(t, err)
	if !ok || !m.Clean || m.Mark != "m1" || m.Owner != "me" || m.Rows != 2 || m.Products != 2 || m.Format != Format {
		t.Fatalf("meta %+v %v", m, ok)
	}
}

// A store survives a reopen as it was left; MarkUnclean and Reset say what
// they say; damaged files are replaced by an empty store, never an error
// that would stop every start.
func TestReopenMarkResetAndDamage(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ld := s.NewLoader("me")
	must(t, ld.SetProduct("P1", []change.Row{row("P1", "W1", 1)}, 0))
	must(t, ld.Flush())
	must(t, ld.Finish("m1", 1, 1))
	ld.Close()
	must(t, s.Close())

	s = openTest(t, dir)
	if m, ok, err := s.Meta(); err != nil || !ok || m.Mark != "m1" || !m.Clean {
		t.Fatalf("after reopen: %+v %v %v", m, ok, err)
	}
	if _, _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("a second open of a store in use succeeded")
	}
	must(t, s.MarkUnclean("me"))
	if m, _, _ := s.Meta(); m.Clean || m.Mark != "" || m.Rows != 1 {
		t.Fatalf("after MarkUnclean: %+v", m)
	}
	must(t, s.Reset())
	if _, ok, _ := s.Meta(); ok {
		t.Fatal("meta after Reset")
	}
	if rows, _ := s.ReadProduct("P1"); len(rows) != 0 {
		t.Fatalf("rows after Reset: %+v", rows)
	}
	must(t, s.Close())

	// Damage: Pebble's files overwritten with noise.
	entries, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range entries {
		if e.Name() != "LOCK" && !e.IsDir() {
			must(t, os.WriteFile(filepath.Join(dir, e.Name()), []byte("noise"), 0o600))
		}
	}
	s, wiped, err := Open(Options{Dir: dir})
	if err != nil || !wiped {
		t.Fatalf("open of a damaged store: wiped %v, %v", wiped, err)
	}
	if _, ok, _ := s.Meta(); ok {
		t.Fatal("meta in a store started over")
	}
	must(t, s.Close())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
