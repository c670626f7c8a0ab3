package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/producer/state"
	"github.com/stockpipe/stock/schemas"
)

// dirtyProduct is a product touched by the source transaction in hand: its
// level before the transaction (for alerts) and the position and kind of
// its last change.
type dirtyProduct struct {
	before *schemas.StockLevel
	pos    position.Position
	kind   string
}

// commitTimeout bounds one Kafka transaction commit (flush included).
const commitTimeout = 30 * time.Second

// handler turns the stream into Kafka transactions. It runs on the
// stream's goroutine only.
type handler struct {
	p      *Pipeline
	st     *state.Store
	w      *sink.Writer
	stream *source.Stream

	// skipThrough is the commit LSN of the last source transaction already
	// in Kafka; the slot may resend transactions up to it after a crash.
	skipThrough uint64
	snapshotLSN uint64

	dirty   map[string]*dirtyProduct
	inSrcTx bool
	// batch: source transactions written in the open Kafka transaction.
	last       change.Tx
	batchTxs   []time.Time // commit times, for the commit-to-Kafka latency
	pendingEnd uint64      // end LSN to confirm once the batch commits
}

func (h *handler) touch(productID string, pos position.Position, kind string) {
	d, ok := h.dirty[productID]
	if !ok {
		d = &dirtyProduct{}
		if rows := h.st.ProductRows(productID); len(rows) > 0 {
			d.before = state.Level(productID, rows, position.Position{}, 0, time.Time{}, false)
		}
		h.dirty[productID] = d
	}
	d.pos, d.kind = pos, kind
}

// Change applies one row change to state and writes its change record.
func (h *handler) Change(ctx context.Context, tx *change.Tx, c change.Change) error {
	if tx.CommitLSN <= h.skipThrough {
		return nil
	}
	h.inSrcTx = true
	if err := h.w.Begin(); err != nil {
		return err
	}
	h.p.metrics.changesRead.Inc()
	txID := int64(tx.Xid)
	switch c.Op {
	case change.OpTruncate:
		var ids []string
		h.st.Each(func(id string) { ids = append(ids, id) })
		for _, id := range ids {
			h.touch(id, c.Position, "truncate")
			for _, r := range h.st.ProductRows(id) {
				rec, err := h.p.build.change(change.OpDelete, change.Key{ProductID: r.ProductID, WarehouseID: r.WarehouseID}, &r, nil, c.Position, txID, tx.CommitTime)
				if err != nil {
					return err
				}
				h.w.Produce(rec)
			}
			h.st.SetProduct(id, nil)
		}
		return nil
	case change.OpDelete:
		h.touch(c.Key.ProductID, c.Position, "delete")
		before := h.st.Delete(c.Key)
		if before == nil {
			h.p.log.Warn("delete of a row the state did not hold", "product_id", c.Key.ProductID, "warehouse_id", c.Key.WarehouseID, "position", c.Position.String())
		}
		return h.emitChange(change.OpDelete, c.Key, before, nil, c.Position, txID, tx.CommitTime)
	default:
		if c.OldKey != nil {
			// The primary key changed: the row left its old key.
			h.touch(c.OldKey.ProductID, c.Position, c.After.LastChangeKind)
			before := h.st.Delete(*c.OldKey)
			if err := h.emitChange(change.OpDelete, *c.OldKey, before, nil, c.Position, txID, tx.CommitTime); err != nil {
				return err
			}
		}
		h.touch(c.Key.ProductID, c.Position, c.After.LastChangeKind)
		before := h.st.Put(*c.After)
		op := c.Op
		if c.OldKey != nil {
			op = change.OpInsert
		}
		return h.emitChange(op, c.Key, before, c.After, c.Position, txID, tx.CommitTime)
	}
}

// Signal handles a resnapshot request: every requested product is marked
// touched, so the commit of the signal's transaction writes its level again
// from state. State is PostgreSQL's image at exactly this point of the
// stream, so the levels are consistent with the changes before and after
// them without pausing the stream or re-reading the table.
func (h *handler) Signal(ctx context.Context, tx *change.Tx, sig change.Signal) error {
	if tx.CommitLSN <= h.skipThrough {
		return nil
	}
	var req struct {
		ProductIDs []string `json:"product_ids"`
	}
	if len(sig.Content) > 0 {
		if err := json.Unmarshal(sig.Content, &req); err != nil {
			// A malformed request must not stop the stream: say so and skip it.
			h.p.log.Error("ignoring malformed resnapshot signal", "position", sig.Position.String(), "error", err)
			return nil
		}
	}
	h.inSrcTx = true
	if err := h.w.Begin(); err != nil {
		return err
	}
	n := 0
	mark := func(id string) {
		if len(h.st.ProductRows(id)) > 0 {
			h.touch(id, sig.Position, "resnapshot")
			n++
		}
	}
	if len(req.ProductIDs) == 0 {
		h.st.Each(mark)
	} else {
		for _, id := range req.ProductIDs {
			mark(id)
		}
	}
	h.p.log.Info("resnapshot requested", "position", sig.Position.String(), "requested", len(req.ProductIDs), "products", n)
	return nil
}

func (h *handler) emitChange(op change.Op, k change.Key, before, after *change.Row, pos position.Position, txID int64, at time.Time) error {
	rec, err := h.p.build.change(op, k, before, after, pos, txID, at)
	if err != nil {
		return err
	}
	h.w.Produce(rec)
	return nil
}

// Commit writes the levels (and alerts) of every product the transaction
// touched, then commits the Kafka transaction when the batch is full.
func (h *handler) Commit(ctx context.Context, tx change.Tx) error {
	h.inSrcTx = false
	if tx.CommitLSN <= h.skipThrough || len(h.dirty) == 0 {
		// Already in Kafka, or nothing of ours (a heartbeat): confirmable
		// as soon as everything before it is.
		if h.w.InTx() {
			h.pendingEnd = max(h.pendingEnd, tx.EndLSN)
		} else {
			h.stream.Ack(tx.EndLSN)
		}
		return nil
	}
	txID := int64(tx.Xid)
	for id, d := range h.dirty {
		next := state.Level(id, h.st.ProductRows(id), d.pos, txID, tx.CommitTime, false)
		rec, err := h.p.build.level(id, next, d.pos, d.kind, tx.CommitTime)
		if err != nil {
			return err
		}
		h.w.Produce(rec)
		for _, a := range state.Alerts(d.before, next) {
			rec, err := h.p.build.alert(&a)
			if err != nil {
				return err
			}
			h.w.Produce(rec)
		}
		delete(h.dirty, id)
	}
	h.last = tx
	h.pendingEnd = tx.EndLSN
	h.batchTxs = append(h.batchTxs, tx.CommitTime)
	if h.w.Pending() >= h.p.cfg.BatchMaxRecords || h.w.Age() >= h.p.cfg.BatchLinger {
		return h.flush(ctx)
	}
	return nil
}

// Idle commits the open batch unless a source transaction is half read.
func (h *handler) Idle(ctx context.Context) error {
	if h.w.InTx() && !h.inSrcTx {
		return h.flush(ctx)
	}
	return nil
}

func (h *handler) flush(ctx context.Context) error {
	if !h.w.InTx() {
		return nil
	}
	start := time.Now()
	// A commit under way finishes even when shutdown is signalled: the
	// stream stops at its next message and shutdown confirms what
	// committed. A timeout, not the signal, bounds it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	err := h.w.Commit(cctx, sink.Checkpoint{CommitLSN: h.last.CommitLSN, EndLSN: h.last.EndLSN, SnapshotDone: true, SnapshotLSN: h.snapshotLSN})
	if err != nil {
		return err
	}
	now := time.Now()
	m := h.p.metrics
	m.kafkaCommit.Observe(now.Sub(start).Seconds())
	m.kafkaTxns.Inc()
	m.sourceTxns.Add(float64(len(h.batchTxs)))
	for _, ct := range h.batchTxs {
		m.commitLatency.Observe(now.Sub(ct).Seconds())
	}
	h.batchTxs = h.batchTxs[:0]
	m.setState(h.st.Rows(), h.st.Products())
	h.skipThrough = h.last.CommitLSN
	h.stream.Ack(h.pendingEnd)
	return nil
}

// shutdown commits what is complete and confirms it, under a fresh context.
func (h *handler) shutdown(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.p.cfg.ShutdownTimeout)
	defer cancel()
	if h.inSrcTx {
		// Half a source transaction must not reach Kafka; the slot resends it.
		h.p.log.Info("shutdown: aborting a partly read source transaction")
		return nil
	}
	if err := h.flush(sctx); err != nil {
		return fmt.Errorf("flushing on shutdown: %w", err)
	}
	if err := h.stream.SendStatus(sctx); err != nil {
		return err
	}
	h.p.log.Info("shutdown: flushed and confirmed", "confirmed_lsn", position.Position{LSN: h.stream.Acked()}.String())
	return nil
}

// snapshot writes the state of every product as of the slot's exported
// snapshot, in chunks of Kafka transactions. Only the last chunk's
// checkpoint says the snapshot is done: a crash before it makes the next
// start take a new slot and snapshot.
func (h *handler) snapshot(ctx context.Context, conn *pgx.Conn, slot source.CreatedSlot) error {
	cfg := &h.p.cfg
	pos := position.Position{LSN: slot.ConsistentPoint}
	at := time.Now().UTC()
	seen := make(map[string]struct{}, h.st.Products())
	products := 0
	checkpoint := sink.Checkpoint{EndLSN: slot.ConsistentPoint, SnapshotLSN: slot.ConsistentPoint}
	rows, err := source.ReadSnapshot(ctx, conn, slot.SnapshotName, 5*time.Second, h.p.log, func(ctx context.Context, productID string, rows []change.Row) error {
		if err := h.w.Begin(); err != nil {
			return err
		}
		seen[productID] = struct{}{}
		h.st.SetProduct(productID, rows)
		l := state.Level(productID, rows, pos, 0, at, true)
		rec, err := h.p.build.level(productID, l, pos, "snapshot", at)
		if err != nil {
			return err
		}
		h.w.Produce(rec)
		for i := range rows {
			r := &rows[i]
			if err := h.emitChange(change.OpRead, change.Key{ProductID: r.ProductID, WarehouseID: r.WarehouseID}, nil, r, pos, 0, at); err != nil {
				return err
			}
		}
		if products++; products%cfg.SnapshotChunk == 0 {
			if err := h.w.Commit(ctx, checkpoint); err != nil {
				return fmt.Errorf("committing snapshot chunk: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("taking snapshot: %w", err)
	}
	h.p.metrics.snapshotRows.Add(float64(rows))
	// Products Kafka still holds that the snapshot no longer has were
	// deleted while no slot was capturing them.
	if err := h.w.Begin(); err != nil {
		return err
	}
	var gone []string
	h.st.Each(func(id string) {
		if _, ok := seen[id]; !ok {
			gone = append(gone, id)
		}
	})
	for _, id := range gone {
		h.st.SetProduct(id, nil)
		rec, err := h.p.build.level(id, nil, pos, "snapshot", at)
		if err != nil {
			return err
		}
		h.w.Produce(rec)
	}
	checkpoint.SnapshotDone = true
	if err := h.w.Commit(ctx, checkpoint); err != nil {
		return fmt.Errorf("committing snapshot end: %w", err)
	}
	h.snapshotLSN = slot.ConsistentPoint
	h.p.metrics.setState(h.st.Rows(), h.st.Products())
	h.p.log.Info("snapshot written", "rows", rows, "products", products, "tombstones", len(gone),
		"consistent_point", pos.String())
	return nil
}
