package consume

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/schemas"
)

// errBadRecord marks a record that cannot be projected, whatever the retry.
var errBadRecord = errors.New("bad record")

// badRecord is a record skipped by a batch, with why.
type badRecord struct {
	rec *kgo.Record
	err error
}

// batch is what one Redis round trip applies: the latest snapshot of each
// product among a run of records of one partition.
type batch struct {
	snaps []stockstore.Snapshot
	// superseded counts records dropped because a later record of the same
	// product in the batch replaces them.
	superseded int
	bad        []badRecord
	// last is the newest position in the batch and its commit time (zero
	// when no record decoded).
	last       position.Position
	lastCommit time.Time
}

// newBatch decodes recs (in offset order, one partition) and keeps, per
// product, the snapshot with the greatest position; on equal positions the
// later record wins, as it would in Redis. Transaction markers carry
// nothing to apply; they only move the offset to commit.
func newBatch(recs []*kgo.Record) batch {
	var b batch
	b.snaps = make([]stockstore.Snapshot, 0, len(recs))
	at := make(map[string]int, len(recs)) // product id -> index in b.snaps
	for _, r := range recs {
		if r.Attrs.IsControl() {
			continue
		}
		s, err := snapshotOf(r)
		if err != nil {
			b.bad = append(b.bad, badRecord{rec: r, err: err})
			continue
		}
		if s.Position.After(b.last) || b.last.IsZero() {
			b.last, b.lastCommit = s.Position, s.CommitTime
		}
		i, seen := at[s.ProductID]
		switch {
		case !seen:
			at[s.ProductID] = len(b.snaps)
			b.snaps = append(b.snaps, s)
		case s.Position.Compare(b.snaps[i].Position) >= 0:
			b.snaps[i] = s
			b.superseded++
		default:
			b.superseded++
		}
	}
	return b
}

// snapshotOf converts a stock.levels.v1 record. A nil value is a tombstone:
// its product is the key and its position the ce_id header, since a
// tombstone carries no body.
func snapshotOf(r *kgo.Record) (stockstore.Snapshot, error) {
	if len(r.Key) == 0 {
		return stockstore.Snapshot{}, fmt.Errorf("%w: no key", errBadRecord)
	}
	key := string(r.Key)
	if r.Value == nil {
		p, err := headerPosition(r)
		if err != nil {
			return stockstore.Snapshot{}, fmt.Errorf("%w: tombstone of %q: %v", errBadRecord, key, err)
		}
		return stockstore.Snapshot{ProductID: key, Position: p, Deleted: true, CommitTime: headerTime(r)}, nil
	}
	lv, err := schemas.DecodeLevel(r.Value)
	if err != nil {
		return stockstore.Snapshot{}, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	if lv.ProductID != key {
		// Compaction and partitioning go by the key: a value filed under
		// another product's key would never be deleted by its tombstone.
		return stockstore.Snapshot{}, fmt.Errorf("%w: key %q carries product %q", errBadRecord, key, lv.ProductID)
	}
	return fromLevel(lv), nil
}

// headerPosition reads the position from the CloudEvents id header: the
// position's String form, optionally followed by "/" and more (the producer
// appends the product id to keep ids unique per record).
func headerPosition(r *kgo.Record) (position.Position, error) {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderID {
			p, err := positionOfID(string(h.Value))
			if err != nil {
				return position.Position{}, fmt.Errorf("header %s: %w", schemas.HeaderID, err)
			}
			return p, nil
		}
	}
	return position.Position{}, fmt.Errorf("no %s header", schemas.HeaderID)
}

// positionOfID parses "HI/LO:INDEX" or "HI/LO:INDEX/anything".
func positionOfID(id string) (position.Position, error) {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		if j := strings.IndexByte(id[i:], '/'); j >= 0 {
			id = id[:i+j]
		}
	}
	return position.Parse(id)
}

// headerTime reads the CloudEvents time header; zero when absent or bad.
func headerTime(r *kgo.Record) time.Time {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderTime {
			t, _ := time.Parse(time.RFC3339Nano, string(h.Value))
			return t
		}
	}
	return time.Time{}
}

func fromLevel(lv *schemas.StockLevel) stockstore.Snapshot {
	whs := make([]stockstore.Warehouse, len(lv.Warehouses))
	for i, w := range lv.Warehouses {
		whs[i] = stockstore.Warehouse{
			WarehouseID:       w.WarehouseID,
			OnHand:            int64(w.OnHand),
			Reserved:          int64(w.Reserved),
			Available:         int64(w.Available),
			Status:            w.Status,
			LowStockThreshold: int64(w.LowStockThreshold),
		}
	}
	return stockstore.Snapshot{
		ProductID:  lv.ProductID,
		Position:   lv.Position.Value(),
		OnHand:     lv.OnHand,
		Reserved:   lv.Reserved,
		Available:  lv.Available,
		Status:     lv.Status,
		Warehouses: whs,
		CommitTime: lv.CommitTime,
	}
}
