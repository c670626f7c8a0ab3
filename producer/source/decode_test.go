package source

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestRowDecoderParsesPgoutputText(t *testing.T) {
	rel := &pglogrepl.RelationMessage{Namespace: "public", RelationName: Table}
	cols := []struct {
		name string
		oid  uint32
	}{
		{"product_id", oidText}, {"warehouse_id", oidText}, {"on_hand", oidInt4}, {"reserved", oidInt4},
		{"safety_stock", oidInt4}, {"incoming", oidInt4}, {"low_stock_threshold", oidInt4}, {"version", oidInt8},
		{"last_change_kind", oidText}, {"last_change_ref", oidText}, {"updated_at", oidTimestamptz},
	}
	for _, c := range cols {
		rel.Columns = append(rel.Columns, &pglogrepl.RelationMessageColumn{Name: c.name, DataType: c.oid})
	}
	d, err := newRowDecoder(rel)
	if err != nil {
		t.Fatal(err)
	}
	text := func(s string) *pglogrepl.TupleDataColumn {
		return &pglogrepl.TupleDataColumn{DataType: 't', Data: []byte(s)}
	}
	for _, tc := range []struct {
		name    string
		updated string
		want    time.Time
	}{
		{"micros", "2026-11-25 10:00:00.123456+00", time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)},
		{"whole second", "2026-11-25 10:00:00+00", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		{"offset falls back to pgtype", "2026-11-25 12:00:00.5+02", time.Date(2026, 11, 25, 10, 0, 0, 500000000, time.UTC)},
		{"millis", "2026-11-25 10:00:00.123+00", time.Date(2026, 11, 25, 10, 0, 0, 123000000, time.UTC)},
		{"half-hour offset", "2026-11-25 15:30:00.000001+05:30", time.Date(2026, 11, 25, 10, 0, 0, 1000, time.UTC)},
		{"leap day", "2028-02-29 23:59:59.999999+00", time.Date(2028, 2, 29, 23, 59, 59, 999999000, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tuple := &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{
				text("SKU-1"), text("WH-01"), text("20"), text("2"), text("1"), text("0"), text("15"), text("9000000000"),
				text("reserve"), {DataType: 'n'}, text(tc.updated),
			}}
			r, err := d.row(tuple)
			if err != nil {
				t.Fatal(err)
			}
			if r.ProductID != "SKU-1" || r.WarehouseID != "WH-01" || r.OnHand != 20 || r.Reserved != 2 || r.SafetyStock != 1 ||
				r.LowStockThreshold != 15 || r.Version != 9000000000 || r.LastChangeKind != "reserve" || r.LastChangeRef != "" {
				t.Fatalf("row = %+v", r)
			}
			if !r.UpdatedAt.Equal(tc.want) {
				t.Fatalf("updated_at = %s, want %s", r.UpdatedAt, tc.want)
			}
		})
	}
	t.Run("bad integer is an error", func(t *testing.T) {
		tuple := &pglogrepl.TupleData{Columns: []*pglogrepl.TupleDataColumn{
			text("SKU-1"), text("WH-01"), text("x"), text("2"), text("1"), text("0"), text("15"), text("1"),
			text("k"), text("r"), text("2026-11-25 10:00:00+00"),
		}}
		if _, err := d.row(tuple); err == nil {
			t.Fatal("decoding on_hand=x succeeded")
		}
	})
	t.Run("missing column is refused", func(t *testing.T) {
		bad := &pglogrepl.RelationMessage{Namespace: "public", RelationName: Table, Columns: rel.Columns[:5]}
		if _, err := newRowDecoder(bad); err == nil {
			t.Fatal("a relation without all columns was accepted")
		}
	})
}
