package cdc

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/schemas"
)

// The builder reuses header values across records (the fixed ones, the event
// types, a source transaction's commit time): each record must still carry
// its own transaction's time and kind, and a later record must not change
// an earlier one's.
func TestRecordHeadersFollowEachRecord(t *testing.T) {
	b := newRecordBuilder(&Config{Source: "/stock/test", ChangesTopic: "c", LevelsTopic: "l"})
	row := func(kind string) *change.Row {
		return &change.Row{ProductID: "P", WarehouseID: "W", OnHand: 1, LastChangeKind: kind, UpdatedAt: time.Unix(1, 0)}
	}
	t1 := time.Date(2026, 12, 5, 10, 0, 0, 1000, time.FixedZone("x", 3600))
	t2 := t1.Add(time.Millisecond)
	var recs []*kgo.Record
	for i, c := range []struct {
		kind string
		at   time.Time
	}{{"sale", t1}, {"sale", t1}, {"receipt", t2}, {"sale", t1}} {
		r, err := b.change(change.OpUpdate, change.Key{ProductID: "P", WarehouseID: "W"}, row("adjust"), row(c.kind), position.Position{LSN: 1, Index: uint32(i)}, 1, c.at)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	for i, want := range []struct{ typ, at string }{
		{schemas.EventType("sale"), "2026-12-05T09:00:00.000001Z"},
		{schemas.EventType("sale"), "2026-12-05T09:00:00.000001Z"},
		{schemas.EventType("receipt"), "2026-12-05T09:00:00.001001Z"},
		{schemas.EventType("sale"), "2026-12-05T09:00:00.000001Z"},
	} {
		r := recs[i]
		if got := header(r, schemas.HeaderType); got != want.typ {
			t.Errorf("record %d: type %q, want %q", i, got, want.typ)
		}
		if got := header(r, schemas.HeaderTime); got != want.at {
			t.Errorf("record %d: time %q, want %q", i, got, want.at)
		}
		if got := header(r, schemas.HeaderSource); got != "/stock/test" {
			t.Errorf("record %d: source %q", i, got)
		}
		if got, wantID := header(r, schemas.HeaderID), schemas.EventID(position.Position{LSN: 1, Index: uint32(i)}, "P", "W"); got != wantID {
			t.Errorf("record %d: id %q, want %q", i, got, wantID)
		}
	}
}
