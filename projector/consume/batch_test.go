package consume

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/schemas"
)

func pos(lsn uint64, idx uint32) position.Position { return position.Position{LSN: lsn, Index: idx} }

var commitTime = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)

// level encodes a one-warehouse stock.levels.v1 value whose on_hand tells
// which write it was.
func level(t testing.TB, id string, p position.Position, onHand int64) []byte {
	t.Helper()
	var codec schemas.Codec
	status := schemas.Status(onHand, 5)
	v, err := codec.EncodeLevel(&schemas.StockLevel{
		ProductID: id, OnHand: onHand, Available: onHand, Status: status,
		Warehouses: []schemas.WarehouseStock{{
			WarehouseID: "WH-01", OnHand: int32(onHand), Available: int32(onHand),
			LowStockThreshold: 5, Status: status, UpdatedAt: commitTime,
		}},
		Position: schemas.PositionOf(p), TxID: 7, CommitTime: commitTime,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ceID is the CloudEvents id the producer stamps on a levels record.
func ceID(p position.Position, id string) []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: schemas.HeaderID, Value: []byte(p.String() + "/" + id)},
		{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "test")}}
}

func levelRecord(t testing.TB, topic, id string, p position.Position, onHand int64) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(id), Value: level(t, id, p, onHand), Headers: ceID(p, id)}
}

func tombstoneRecord(topic, id string, p position.Position) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(id), Headers: ceID(p, id)}
}

func TestNewBatch(t *testing.T) {
	type want struct {
		id      string
		pos     position.Position
		deleted bool
		onHand  int64
	}
	tests := []struct {
		name       string
		recs       []*kgo.Record
		want       []want
		superseded int
		bad        int
	}{
		{
			name: "latest position per product wins, first-seen order kept",
			recs: []*kgo.Record{
				levelRecord(t, "t", "A", pos(1, 1), 1),
				levelRecord(t, "t", "B", pos(1, 2), 10),
				levelRecord(t, "t", "A", pos(2, 1), 2),
			},
			want:       []want{{"A", pos(2, 1), false, 2}, {"B", pos(1, 2), false, 10}},
			superseded: 1,
		},
		{
			name: "an older record later in the batch does not win",
			recs: []*kgo.Record{
				levelRecord(t, "t", "A", pos(5, 1), 5),
				levelRecord(t, "t", "A", pos(4, 1), 4),
			},
			want:       []want{{"A", pos(5, 1), false, 5}},
			superseded: 1,
		},
		{
			name: "tombstone takes its position from ce_id and supersedes",
			recs: []*kgo.Record{
				levelRecord(t, "t", "A", pos(1, 1), 1),
				tombstoneRecord("t", "A", pos(1, 2)),
			},
			want:       []want{{"A", pos(1, 2), true, 0}},
			superseded: 1,
		},
		{
			name: "bare position in ce_id is accepted",
			recs: []*kgo.Record{{Key: []byte("A"), Headers: []kgo.RecordHeader{{Key: schemas.HeaderID, Value: []byte("1/0:3")}}}},
			want: []want{{"A", pos(1<<32, 3), true, 0}},
		},
		{
			name: "bad records are set aside, the rest kept",
			recs: []*kgo.Record{
				{Key: []byte("A"), Value: []byte("not avro")},
				{Key: nil, Value: level(t, "A", pos(1, 1), 1)},
				{Key: []byte("B"), Value: level(t, "A", pos(1, 1), 1)}, // key and product differ
				{Key: []byte("C")}, // tombstone without ce_id
				{Key: []byte("C"), Headers: []kgo.RecordHeader{{Key: schemas.HeaderID, Value: []byte("garbage")}}},
				levelRecord(t, "t", "D", pos(1, 1), 1),
			},
			want: []want{{"D", pos(1, 1), false, 1}},
			bad:  5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Records built here carry no transactional bit: that check has
			// its own test.
			b := NewBatch(tt.recs, Trust{AcceptNonTransactional: true})
			if len(b.Bad) != tt.bad || b.Superseded != tt.superseded {
				t.Errorf("bad %d superseded %d, want %d and %d (bad: %v)", len(b.Bad), b.Superseded, tt.bad, tt.superseded, b.Bad)
			}
			if len(b.Snaps) != len(tt.want) {
				t.Fatalf("got %d snapshots %+v, want %d", len(b.Snaps), b.Snaps, len(tt.want))
			}
			for i, w := range tt.want {
				s := b.Snaps[i]
				if s.ProductID != w.id || s.Position != w.pos || s.Deleted != w.deleted || s.OnHand != w.onHand {
					t.Errorf("snapshot %d = %s at %s deleted=%v on_hand=%d, want %+v", i, s.ProductID, s.Position, s.Deleted, s.OnHand, w)
				}
			}
		})
	}
}

func TestNewBatchRefusesRecordsWrittenOutsideTransactions(t *testing.T) {
	b := NewBatch([]*kgo.Record{levelRecord(t, "t", "A", pos(1, 1), 1)}, Trust{})
	if len(b.Snaps) != 0 || len(b.Bad) != 1 || b.Bad[0].Reason != ReasonNotTransactional {
		t.Fatalf("snapshots %+v bad %+v, want the record refused as %s", b.Snaps, b.Bad, ReasonNotTransactional)
	}
}

func TestNewBatchNamesWhyARecordIsBad(t *testing.T) {
	lying := level(t, "A", pos(1, 1), 1)
	lying[len(lying)-20] ^= 0x7f // inside a warehouse's fields: decodes, does not add up
	for name, c := range map[string]struct {
		rec    *kgo.Record
		reason string
	}{
		"control character in key": {&kgo.Record{Key: []byte("A\x00"), Value: level(t, "A\x00", pos(1, 1), 1)}, ReasonBadKey},
		"random bytes":             {&kgo.Record{Key: []byte("A"), Value: []byte("not avro at all")}, ReasonUndecodable},
		"key of another product":   {&kgo.Record{Key: []byte("B"), Value: level(t, "A", pos(1, 1), 1)}, ReasonBreaksContract},
		"tombstone without ce_id":  {&kgo.Record{Key: []byte("C")}, ReasonBadTombstone},
	} {
		b := NewBatch([]*kgo.Record{c.rec}, Trust{AcceptNonTransactional: true})
		if len(b.Bad) != 1 || b.Bad[0].Reason != c.reason {
			t.Errorf("%s: bad %+v, want one with reason %s", name, b.Bad, c.reason)
		}
	}
}

// A dead letter is a copy written outside any transaction: Copied drops the
// transaction check only, the source and the contract are still checked.
func TestSnapshotOfCopiedKeepsTheSourceCheck(t *testing.T) {
	ours := levelRecord(t, "t", "A", pos(1, 1), 1) // not transactional, names a producer
	if s, reason, err := SnapshotOf(ours, Trust{Copied: true}); err != nil || s.ProductID != "A" {
		t.Errorf("copy of the producer's record: %+v, %s, %v; want it taken", s, reason, err)
	}
	stranger := &kgo.Record{Key: ours.Key, Value: ours.Value, Headers: ours.Headers[:1]} // no ce_source
	if _, reason, err := SnapshotOf(stranger, Trust{Copied: true}); err == nil || reason != ReasonNotOurs {
		t.Errorf("copy without a producer's source: reason %q, %v; want %s", reason, err, ReasonNotOurs)
	}
}
