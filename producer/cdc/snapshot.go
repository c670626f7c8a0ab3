package cdc

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/producer/state"
)

// snapshot writes the state of every product as of the slot's exported
// snapshot, in chunks of Kafka transactions. Only the last chunk's
// checkpoint says the snapshot is done: a crash before it makes the next
// start take a new slot and snapshot.
//
// The state store is unclean from before the snapshot starts (the caller
// marked it) to the last chunk's commit: products go into it in bulk as
// they are read, ahead of Kafka, and a crash meanwhile makes the next start
// rebuild it from Kafka, as it takes the snapshot again.
func (h *handler) snapshot(ctx context.Context, conn *pgx.Conn, slot source.CreatedSlot) error {
	cfg := &h.cfg
	pos := position.Position{LSN: slot.ConsistentPoint}
	at := time.Now().UTC()
	products := 0
	checkpoint := sink.Checkpoint{EndLSN: slot.ConsistentPoint, SnapshotLSN: slot.ConsistentPoint}
	ld := h.store.NewLoader(h.owner)
	defer ld.Close()
	rows, err := source.ReadSnapshot(ctx, conn, slot.SnapshotName, 5*time.Second, h.log, func(ctx context.Context, productID string, rows []change.Row) error {
		if err := h.w.Begin(); err != nil {
			return err
		}
		// The store records which snapshot wrote the product: the products
		// it holds that this one did not write are gone.
		if err := ld.SetProduct(productID, rows, slot.ConsistentPoint); err != nil {
			return err
		}
		l := state.Level(productID, rows, pos, 0, at, true)
		rec, err := h.build.level(productID, l, pos, "snapshot", at)
		if err != nil {
			return err
		}
		h.w.Produce(rec)
		for i := range rows {
			r := &rows[i]
			rec, err := h.build.change(change.OpRead, change.Key{ProductID: r.ProductID, WarehouseID: r.WarehouseID}, nil, r, pos, 0, at)
			if err != nil {
				return err
			}
			h.w.Produce(rec)
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
	h.metrics.snapshotRows.Add(float64(rows))
	if err := ld.Flush(); err != nil {
		return err
	}
	// Products Kafka still holds that the snapshot no longer has were
	// deleted while no slot was capturing them. The store lists them as
	// written by another snapshot or by the stream; each gets its
	// tombstone as the walk finds it, so none waits in memory.
	if err := h.w.Begin(); err != nil {
		return err
	}
	var kept, keptRows int64
	gone := 0
	err = h.store.EachProduct(func(id string, snap uint64, n int64) error {
		if snap == slot.ConsistentPoint {
			kept++
			keptRows += n
			return nil
		}
		gone++
		if err := ld.SetProduct(id, nil, 0); err != nil {
			return err
		}
		rec, err := h.build.level(id, nil, pos, "snapshot", at)
		if err != nil {
			return err
		}
		h.w.Produce(rec)
		return nil
	})
	if err != nil {
		return err
	}
	checkpoint.SnapshotDone = true
	// Set here so that the store records the checkpoint exactly as Kafka
	// holds it.
	checkpoint.WrittenAt = time.Now().UTC()
	if err := h.w.Commit(ctx, checkpoint); err != nil {
		return fmt.Errorf("committing snapshot end: %w", err)
	}
	if err := ld.Finish(checkpointMark(checkpoint), keptRows, kept); err != nil {
		return err
	}
	h.snapshotLSN = slot.ConsistentPoint
	h.metrics.setState(int(keptRows), int(kept))
	h.log.Info("snapshot written", "rows", rows, "products", products, "tombstones", gone,
		"consistent_point", pos.String())
	return nil
}
