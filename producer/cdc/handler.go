package cdc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/producer/state"
	"github.com/stockpipe/stock/producer/statestore"
	"github.com/stockpipe/stock/schemas"
)

// dirtyProduct is a product touched by the source transaction in hand: its
// statuses before the transaction (for alerts) and the position and kind of
// its last change.
type dirtyProduct struct {
	before *state.Statuses
	pos    position.Position
	kind   string
}

// commitTimeout bounds one Kafka transaction commit (flush included).
const commitTimeout = 30 * time.Second

// handler turns the stream into batches of records for the committer (and
// writes the initial snapshot through the writer itself, before streaming
// starts). It runs on the stream's goroutine only.
type handler struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	build   recordBuilder
	// stateBudget is the memory the state's changed products may take.
	stateBudget int64

	// store is the state on disk; st, its view, exists once streaming
	// starts (the snapshot writes the store in bulk).
	store  *statestore.Store
	owner  string
	st     *statestore.View
	w      *sink.Writer
	stream *source.Stream
	// ledger records an LSN before the stream may confirm it.
	ledger *source.Ledger

	// skipThrough is the commit LSN of the last source transaction already
	// in Kafka; the slot may resend transactions up to it after a crash.
	skipThrough uint64
	snapshotLSN uint64

	dirty   map[string]*dirtyProduct
	inSrcTx bool
	// wrote is set when the source transaction in hand wrote a record
	// beside the levels of dirty (the tombstones of a truncate, the levels
	// of a resnapshot): its commit must commit them.
	wrote bool
	// cur accumulates the next batch for the committer; began is when its
	// first record or LSN arrived (the batch's age for the linger).
	cur   *batch
	began time.Time
	com   *committer
	// lateLogged is when a late source transaction was last logged.
	lateLogged time.Time
	// level is where Commit builds each touched product's level, encoded
	// at once and then built over by the next.
	level schemas.StockLevel
}

// add appends a record to the batch in hand. A single source transaction
// too large to hold in memory is handed over in parts: they go into the
// open Kafka transaction, committed at the source commit.
func (h *handler) add(ctx context.Context, r *kgo.Record) error {
	if h.cur.empty() {
		h.began = time.Now()
	}
	h.cur.records = append(h.cur.records, r)
	if h.inSrcTx && (len(h.cur.records) >= h.holdLimit() || h.st.Dirty() > h.spillAt()) {
		return h.handOver(ctx)
	}
	return nil
}

// spillAt is how much memory changed products may take before the handler
// hands them to the committer for the store: at a source commit with the
// batch, inside a source transaction with a part of it, written ahead of
// Kafka (the store is then unclean until the transaction's commit). They
// stay in memory until the store has them.
func (h *handler) spillAt() int64 { return h.stateBudget / 2 }

// holdLimit is how many records the handler holds before it waits for the
// committer, bounding memory when Kafka is slower than the stream: one
// batch's worth (four held 60,000 records more of a million-row source
// transaction; docs/producer.md, "Memory").
func (h *handler) holdLimit() int { return max(h.cfg.BatchMaxRecords, 10_000) }

// handOver gives the batch in hand to the committer, waiting until it
// takes it: the whole batch between source transactions; inside one, a part
// (a source transaction too large to hold), which goes into the open Kafka
// transaction and is committed with the rest at the source commit.
func (h *handler) handOver(ctx context.Context) error {
	if err := h.com.failed(); err != nil {
		return err
	}
	b, changes, carried := h.ready()
	select {
	case h.com.in <- b:
	case <-h.com.done:
		return h.com.failed()
	case <-ctx.Done():
		return ctx.Err()
	}
	h.handedOver(changes, carried)
	return nil
}

// offer gives the whole batch in hand to the committer if it is free now;
// when it is busy, the batch goes on growing. Only between source
// transactions.
func (h *handler) offer() error {
	if err := h.com.failed(); err != nil {
		return err
	}
	b, changes, carried := h.ready()
	select {
	case h.com.in <- b:
		h.handedOver(changes, carried)
	default:
		// carried is empty unless a source transaction is half read: the
		// commit times stay as they are rather than be copied at every
		// source commit while the committer is busy (they were a twelfth
		// of a backlog's drain's allocations).
		if len(carried) > 0 {
			b.commitTimes = append(carried, b.commitTimes...)
		}
		b.state = nil // the period goes on; a later hand-over takes it
	}
	return nil
}

// ready prepares the batch in hand for the committer; it is final (ends
// with a source commit) unless a source transaction is half read. changes
// are the state's changes it takes along, carried the commit times that
// stay with the handler.
func (h *handler) ready() (b *batch, changes *statestore.Changes, carried []time.Time) {
	b = h.cur
	b.final = !h.inSrcTx
	// A whole batch takes the state's changes along, to be stored once
	// Kafka committed it; a part only when they outgrew their memory.
	if b.final || h.st.Dirty() > h.spillAt() {
		b.state = h.st.Pending()
	}
	// A part's complete source transactions commit with the rest of the
	// Kafka transaction; their commit times are measured then, so they
	// stay with the handler rather than go with the part.
	if !b.final {
		carried, b.commitTimes = b.commitTimes, nil
	}
	return b, b.state, carried
}

// handedOver starts the next batch once the committer took one.
func (h *handler) handedOver(changes *statestore.Changes, carried []time.Time) {
	h.st.Advance(changes)
	h.cur = &batch{commitTimes: carried}
	h.metrics.setState(int(h.st.Rows()), int(h.st.Products()))
}

func (h *handler) touch(productID string, pos position.Position, kind string) error {
	d, ok := h.dirty[productID]
	if !ok {
		rows, err := h.st.ProductRows(productID)
		if err != nil {
			return err
		}
		d = &dirtyProduct{}
		if len(rows) > 0 {
			d.before = state.StatusesOf(rows)
		}
		h.dirty[productID] = d
	}
	d.pos, d.kind = pos, kind
	return nil
}

// Change applies one row change to state and writes its change record.
func (h *handler) Change(ctx context.Context, tx *change.Tx, c change.Change) error {
	if tx.CommitLSN <= h.skipThrough {
		return nil
	}
	h.inSrcTx = true
	h.metrics.changesRead.Inc()
	txID := int64(tx.Xid)
	switch c.Op {
	case change.OpTruncate:
		return h.truncate(ctx, tx, c)
	case change.OpDelete:
		if err := h.touch(c.Key.ProductID, c.Position, "delete"); err != nil {
			return err
		}
		before, err := h.st.Delete(c.Key)
		if err != nil {
			return err
		}
		if before == nil {
			h.log.Warn("delete of a row the state did not hold", "product_id", c.Key.ProductID, "warehouse_id", c.Key.WarehouseID, "position", c.Position.String())
		}
		return h.emitChange(ctx, change.OpDelete, c.Key, before, nil, c.Position, txID, tx.CommitTime)
	default:
		if c.OldKey != nil {
			// The primary key changed: the row left its old key.
			if err := h.touch(c.OldKey.ProductID, c.Position, c.After.LastChangeKind); err != nil {
				return err
			}
			before, err := h.st.Delete(*c.OldKey)
			if err != nil {
				return err
			}
			if err := h.emitChange(ctx, change.OpDelete, *c.OldKey, before, nil, c.Position, txID, tx.CommitTime); err != nil {
				return err
			}
		}
		if err := h.touch(c.Key.ProductID, c.Position, c.After.LastChangeKind); err != nil {
			return err
		}
		before, err := h.st.Put(*c.After)
		if err != nil {
			return err
		}
		op := c.Op
		if c.OldKey != nil {
			op = change.OpInsert
		}
		return h.emitChange(ctx, op, c.Key, before, c.After, c.Position, txID, tx.CommitTime)
	}
}

func (h *handler) emitChange(ctx context.Context, op change.Op, k change.Key, before, after *change.Row, pos position.Position, txID int64, at time.Time) error {
	rec, err := h.build.change(op, k, before, after, pos, txID, at)
	if err != nil {
		return err
	}
	return h.add(ctx, rec)
}

// Commit writes the levels (and alerts) of every product the transaction
// touched, and hands the batch to the committer once it is full or old
// enough, if the committer is free; otherwise the batch goes on growing.
func (h *handler) Commit(ctx context.Context, tx change.Tx) error {
	if err := h.com.failed(); err != nil {
		return err
	}
	if tx.CommitLSN > h.skipThrough {
		h.observeSourceDelay(tx)
	}
	if tx.CommitLSN <= h.skipThrough || (len(h.dirty) == 0 && !h.wrote) {
		// Already in Kafka, or nothing of ours (a heartbeat): confirmable
		// once everything before it is, so it rides with the batch.
		h.inSrcTx = false
		if h.cur.empty() {
			h.began = time.Now()
		}
		h.cur.ackLSN = max(h.cur.ackLSN, tx.EndLSN)
		return nil
	}
	txID := int64(tx.Xid)
	for id, d := range h.dirty {
		rows, err := h.st.ProductRows(id)
		if err != nil {
			return err
		}
		next := state.LevelInto(&h.level, id, rows, d.pos, txID, tx.CommitTime, false)
		rec, err := h.build.level(id, next, d.pos, d.kind, tx.CommitTime)
		if err != nil {
			return err
		}
		if err := h.add(ctx, rec); err != nil {
			return err
		}
		for _, a := range state.Alerts(d.before, next) {
			rec, err := h.build.alert(&a)
			if err != nil {
				return err
			}
			if err := h.add(ctx, rec); err != nil {
				return err
			}
		}
		delete(h.dirty, id)
	}
	h.inSrcTx, h.wrote = false, false
	h.cur.commits = true
	h.cur.checkpoint = sink.Checkpoint{CommitLSN: tx.CommitLSN, EndLSN: tx.EndLSN, SnapshotDone: true, SnapshotLSN: h.snapshotLSN}
	h.cur.ackLSN = tx.EndLSN
	h.cur.commitTimes = append(h.cur.commitTimes, tx.CommitTime)
	switch {
	case len(h.cur.records) >= h.holdLimit(), h.st.Dirty() > h.spillAt():
		return h.handOver(ctx)
	case len(h.cur.records) >= h.cfg.BatchMaxRecords || time.Since(h.began) >= h.cfg.BatchLinger:
		return h.offer()
	}
	return nil
}

// lateSource is the source delay past which the producer says so in its
// log (at most once per lateLogEvery): the slot delivers transactions late
// (WAL flush, decoding of a large transaction, a busy server), which no
// Kafka setting can make up for.
const (
	lateSource   = time.Second
	lateLogEvery = 10 * time.Second
)

func (h *handler) observeSourceDelay(tx change.Tx) {
	d := time.Since(tx.CommitTime)
	h.metrics.sourceDelay.Observe(d.Seconds())
	if d >= lateSource && time.Since(h.lateLogged) >= lateLogEvery {
		h.lateLogged = time.Now()
		h.log.Warn("source transaction read late from the slot", "delay_ms", d.Milliseconds(),
			"commit_lsn", position.Position{LSN: tx.CommitLSN}.String(), "commit_time", tx.CommitTime)
	}
}

// Idle hands over the batch in hand unless a source transaction is half
// read.
func (h *handler) Idle(ctx context.Context) error {
	if err := h.com.failed(); err != nil {
		return err
	}
	if !h.inSrcTx && !h.cur.empty() {
		return h.offer()
	}
	return nil
}

// shutdown hands over what is complete, waits for the committer to commit
// it and confirms the LSN, under a fresh context.
func (h *handler) shutdown(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.ShutdownTimeout)
	defer cancel()
	// However this ends, the committer's input closes so it stops.
	defer h.com.close()
	if h.inSrcTx {
		// Half a source transaction must not reach Kafka; the slot resends
		// it. Closing the committer's input aborts its open transaction.
		h.log.Info("shutdown: aborting a partly read source transaction")
		return nil
	}
	if !h.cur.empty() {
		if err := h.handOver(sctx); err != nil {
			return fmt.Errorf("flushing on shutdown: %w", err)
		}
	}
	h.com.close()
	select {
	case <-h.com.done:
		if h.com.err != nil {
			return fmt.Errorf("flushing on shutdown: %w", h.com.err)
		}
	case <-sctx.Done():
		return fmt.Errorf("flushing on shutdown: %w", sctx.Err())
	}
	// The ledger first: the stream confirms nothing it has not recorded.
	// Failing that, it confirms what was recorded before; confirming less
	// is always safe (the slot sends the rest again, and the checkpoint
	// skips it).
	if acked := h.stream.Acked(); acked > h.ledger.Recorded() {
		if err := h.ledger.Record(sctx, acked); err != nil {
			h.log.Warn("shutdown: could not record the last lsn in the slot ledger; confirming the one recorded before", "error", err)
		} else {
			h.stream.SetConfirmLimit(acked)
		}
	}
	if err := h.stream.SendStatus(sctx); err != nil {
		return err
	}
	h.log.Info("shutdown: flushed and confirmed", "confirmed_lsn", position.Position{LSN: h.stream.Acked()}.String())
	return nil
}
