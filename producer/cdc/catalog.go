package cdc

import (
	"context"
	"encoding/json"

	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/producer/state"
)

// A TRUNCATE and a resnapshot of every product reach the whole catalog.
// Both go product by product through the state store, writing each
// product's records as they go (parts of the open Kafka transaction once
// they are many), so that neither holds the catalog in memory.

// truncate deletes every row of every product, with a delete record each.
// A product the source transaction changed before is written at its commit
// as usual; every other one gets its tombstone now, at the truncate's
// position, rather than every product of the catalog waiting in memory
// for the commit.
func (h *handler) truncate(ctx context.Context, tx *change.Tx, c change.Change) error {
	txID := int64(tx.Xid)
	return h.st.Each(func(id string) error {
		rows, err := h.st.ProductRows(id)
		if err != nil || len(rows) == 0 {
			return err
		}
		d, touched := h.dirty[id]
		if touched {
			d.pos, d.kind = c.Position, "truncate"
		}
		// rows stays valid while only records are added.
		for i := range rows {
			r := rows[i]
			if err := h.emitChange(ctx, change.OpDelete, change.Key{ProductID: r.ProductID, WarehouseID: r.WarehouseID}, &r, nil, c.Position, txID, tx.CommitTime); err != nil {
				return err
			}
		}
		if err := h.st.Clear(id); err != nil {
			return err
		}
		if touched {
			return nil
		}
		rec, err := h.build.level(id, nil, c.Position, "truncate", tx.CommitTime)
		if err != nil {
			return err
		}
		h.wrote = true
		return h.add(ctx, rec)
	})
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
			h.log.Error("ignoring malformed resnapshot signal", "position", sig.Position.String(), "error", err)
			return nil
		}
	}
	h.inSrcTx = true
	txID := int64(tx.Xid)
	n := 0
	// A product the source transaction changed before is written at its
	// commit, at this position; any other one now, from the state as it is
	// here (the same state its commit would show), so that a resnapshot of
	// every product never holds the catalog in memory.
	emit := func(id string) error {
		rows, err := h.st.ProductRows(id)
		if err != nil || len(rows) == 0 {
			return err
		}
		n++
		if d, ok := h.dirty[id]; ok {
			d.pos, d.kind = sig.Position, "resnapshot"
			return nil
		}
		l := state.Level(id, rows, sig.Position, txID, tx.CommitTime, false)
		rec, err := h.build.level(id, l, sig.Position, "resnapshot", tx.CommitTime)
		if err != nil {
			return err
		}
		h.wrote = true
		return h.add(ctx, rec)
	}
	if len(req.ProductIDs) == 0 {
		if err := h.st.Each(emit); err != nil {
			return err
		}
	} else {
		for _, id := range req.ProductIDs {
			if err := emit(id); err != nil {
				return err
			}
		}
	}
	h.log.Info("resnapshot requested", "position", sig.Position.String(), "requested", len(req.ProductIDs), "products", n)
	return nil
}
