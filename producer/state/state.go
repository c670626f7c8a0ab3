// Package state turns a product's inventory rows into its Kafka values:
// the whole stock.levels.v1 level, the statuses before a change and the
// alerts of a crossing, and back from a level to rows (for rebuilding the
// state store from Kafka). The rows themselves live in producer/statestore.
// It must never do I/O.
package state

import (
	"slices"
	"sort"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/schemas"
)

// Level builds the product's stock.levels.v1 value from its rows, or nil when
// it has none (a tombstone).
func Level(productID string, rows []change.Row, pos position.Position, txID int64, commitTime time.Time, snapshot bool) *schemas.StockLevel {
	return LevelInto(&schemas.StockLevel{}, productID, rows, pos, txID, commitTime, snapshot)
}

// LevelInto is Level built in l, reusing the memory of its warehouses, for a
// caller that encodes the level at once and keeps nothing of it: the stream
// handler builds one for every product of every source transaction, a fifth
// of what a backlog's drain allocated when each was new. It returns l, or
// nil for no rows.
func LevelInto(l *schemas.StockLevel, productID string, rows []change.Row, pos position.Position, txID int64, commitTime time.Time, snapshot bool) *schemas.StockLevel {
	if len(rows) == 0 {
		return nil
	}
	warehouses := slices.Grow(l.Warehouses[:0], len(rows))[:len(rows)]
	*l = schemas.StockLevel{
		ProductID:  productID,
		Warehouses: warehouses,
		Position:   schemas.PositionOf(pos),
		TxID:       txID,
		CommitTime: commitTime.UTC(),
		Snapshot:   snapshot,
	}
	var threshold int64
	for i := range rows {
		r := &rows[i]
		avail := r.Available()
		l.Warehouses[i] = schemas.WarehouseStock{
			WarehouseID:       r.WarehouseID,
			OnHand:            r.OnHand,
			Reserved:          r.Reserved,
			SafetyStock:       r.SafetyStock,
			Incoming:          r.Incoming,
			Available:         avail,
			LowStockThreshold: r.LowStockThreshold,
			Status:            schemas.Status(int64(avail), int64(r.LowStockThreshold)),
			Version:           r.Version,
			LastChangeKind:    r.LastChangeKind,
			LastChangeRef:     r.LastChangeRef,
			UpdatedAt:         r.UpdatedAt.UTC(),
		}
		l.OnHand += int64(r.OnHand)
		l.Reserved += int64(r.Reserved)
		l.SafetyStock += int64(r.SafetyStock)
		l.Incoming += int64(r.Incoming)
		l.Available += int64(avail)
		threshold += int64(r.LowStockThreshold)
	}
	l.Status = schemas.Status(l.Available, threshold)
	return l
}

// FromLevel converts a stock.levels.v1 value back into rows, sorted by
// warehouse id, for rebuilding the state store from Kafka.
func FromLevel(l *schemas.StockLevel) []change.Row {
	rows := make([]change.Row, len(l.Warehouses))
	for i, w := range l.Warehouses {
		rows[i] = change.Row{
			ProductID:         l.ProductID,
			WarehouseID:       w.WarehouseID,
			OnHand:            w.OnHand,
			Reserved:          w.Reserved,
			SafetyStock:       w.SafetyStock,
			Incoming:          w.Incoming,
			LowStockThreshold: w.LowStockThreshold,
			Version:           w.Version,
			LastChangeKind:    w.LastChangeKind,
			LastChangeRef:     w.LastChangeRef,
			UpdatedAt:         w.UpdatedAt.UTC(),
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].WarehouseID < rows[j].WarehouseID })
	return rows
}
