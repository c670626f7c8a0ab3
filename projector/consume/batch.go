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

// BadRecord is a record skipped by a batch, with why: Reason is a short
// code for the metric label and the dead letter's header, Err the detail.
type BadRecord struct {
	Rec    *kgo.Record
	Reason string
	Err    error
}

// Reasons a record is bad (the reason label of bad_records_total and the
// dlq_reason_code header). Exported for the dead-letter tools, which branch
// on them.
const (
	ReasonNotTransactional = "not_transactional"
	ReasonNotOurs          = "not_ours"
	ReasonBadKey           = "bad_key"
	ReasonUndecodable      = "undecodable"
	ReasonBreaksContract   = "breaks_contract"
	ReasonBadTombstone     = "bad_tombstone"
)

// Trust says which records a batch takes. Only the producer writes the
// levels topic, only inside Kafka transactions, and it names itself as the
// CloudEvents source: by default a record written outside a transaction (a
// stray kcat -P, a test pointed at the wrong cluster) or by another tool is
// bad, whatever it holds, so it cannot change what the storefront sees.
type Trust struct {
	// AcceptNonTransactional turns both checks off, for users who feed the
	// topic another way.
	AcceptNonTransactional bool
	// Copied says the record is a copy of one read from the topic (a dead
	// letter, written by the projector outside any transaction): its own
	// transactional flag says nothing, so only the source check stays. The
	// caller vouches that the original passed the transaction check.
	Copied bool
}

// Batch is what one Redis round trip applies: the latest snapshot of each
// product among a run of records of one partition. The live consumer and
// the rebuild's replay (projector/rebuild) both apply Batches.
type Batch struct {
	Snaps []stockstore.Snapshot
	// Superseded counts records dropped because a later record of the same
	// product in the batch replaces them.
	Superseded int
	Bad        []BadRecord
	// Last is the newest position in the batch and LastCommit its commit
	// time (zero when no record decoded).
	Last       position.Position
	LastCommit time.Time
}

// NewBatch decodes recs (in offset order, one partition) and keeps, per
// product, the snapshot with the greatest position; on equal positions the
// later record wins, as it would in Redis. Transaction markers carry
// nothing to apply; they only move the offset to commit.
func NewBatch(recs []*kgo.Record, tr Trust) Batch {
	var b Batch
	b.Snaps = make([]stockstore.Snapshot, 0, len(recs))
	at := make(map[string]int, len(recs)) // product id -> index in b.Snaps
	for _, r := range recs {
		if r.Attrs.IsControl() {
			continue
		}
		s, reason, err := SnapshotOf(r, tr)
		if err != nil {
			b.Bad = append(b.Bad, BadRecord{Rec: r, Reason: reason, Err: err})
			continue
		}
		if s.Position.After(b.Last) || b.Last.IsZero() {
			b.Last, b.LastCommit = s.Position, s.CommitTime
		}
		i, seen := at[s.ProductID]
		switch {
		case !seen:
			at[s.ProductID] = len(b.Snaps)
			b.Snaps = append(b.Snaps, s)
		case s.Position.Compare(b.Snaps[i].Position) >= 0:
			b.Snaps[i] = s
			b.Superseded++
		default:
			b.Superseded++
		}
	}
	return b
}

// SnapshotOf converts a stock.levels.v1 record, or says why it is not one
// the producer wrote (reason is one of the Reason codes). A nil value is a
// tombstone: its product is the key and its position the ce_id header, since
// a tombstone carries no body. Values decode within the contract's bounds
// (schemas.DecodeLevelRecord), so no record, however built, costs more than a
// bounded allocation. It is the one check of the projector: batches, the
// rebuild and the re-drive of dead letters (projector/dlq) all go through it.
func SnapshotOf(r *kgo.Record, tr Trust) (s stockstore.Snapshot, reason string, err error) {
	if !tr.AcceptNonTransactional && !tr.Copied && !r.Attrs.IsTransactional() {
		return s, ReasonNotTransactional, fmt.Errorf("%w: written outside a Kafka transaction (only the producer writes this topic, always transactionally)", errBadRecord)
	}
	if src := headerValue(r, schemas.HeaderSource); !tr.AcceptNonTransactional && !strings.HasPrefix(src, schemas.SourcePrefix) {
		// Transactional, but another tool's: every record the producer
		// writes names it as the CloudEvents source.
		return s, ReasonNotOurs, fmt.Errorf("%w: ce_source %.64q is not a producer's", errBadRecord, src)
	}
	if err := schemas.CheckID(string(r.Key)); err != nil {
		return s, ReasonBadKey, fmt.Errorf("%w: key %.64q: %v", errBadRecord, r.Key, err)
	}
	key := string(r.Key)
	if r.Value == nil {
		p, err := headerPosition(r)
		if err != nil {
			return s, ReasonBadTombstone, fmt.Errorf("%w: tombstone of %q: %v", errBadRecord, key, err)
		}
		return stockstore.Snapshot{ProductID: key, Position: p, Deleted: true, CommitTime: headerTime(r)}, "", nil
	}
	lv, err := schemas.DecodeLevelRecord(r.Key, r.Value)
	if errors.Is(err, schemas.ErrOutOfBounds) {
		return s, ReasonBreaksContract, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	if err != nil {
		return s, ReasonUndecodable, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	return fromLevel(lv), "", nil
}

// headerPosition reads the position from the CloudEvents id header: the
// position's String form, optionally followed by "/" and more (the producer
// appends the product id to keep ids unique per record).
func headerPosition(r *kgo.Record) (position.Position, error) {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderID {
			p, err := schemas.PositionOfEventID(string(h.Value))
			if err != nil {
				return position.Position{}, fmt.Errorf("header %s: %w", schemas.HeaderID, err)
			}
			return p, nil
		}
	}
	return position.Position{}, fmt.Errorf("no %s header", schemas.HeaderID)
}

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
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
