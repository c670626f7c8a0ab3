package state

import (
	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/schemas"
)

// Statuses are what Alerts compares a product's new level with: the status
// of the product and of each of its warehouse rows before a change. They
// cost a fraction of a whole level, and the stream handler keeps them for
// every product a source transaction touches.
type Statuses struct {
	product    string
	warehouses []warehouseStatus // sorted by warehouse id, as the rows are
}

type warehouseStatus struct{ id, status string }

// StatusesOf returns the statuses of a product's rows (sorted by warehouse
// id, as the store keeps them), computed as Level computes them; nil for no
// rows.
func StatusesOf(rows []change.Row) *Statuses {
	if len(rows) == 0 {
		return nil
	}
	s := &Statuses{warehouses: make([]warehouseStatus, len(rows))}
	var avail, threshold int64
	for i := range rows {
		r := &rows[i]
		a := r.Available()
		s.warehouses[i] = warehouseStatus{id: r.WarehouseID, status: schemas.Status(int64(a), int64(r.LowStockThreshold))}
		avail += int64(a)
		threshold += int64(r.LowStockThreshold)
	}
	s.product = schemas.Status(avail, threshold)
	return s
}

// Alerts returns the status crossings from prev to next, per warehouse
// (in warehouse order) and then for the product total. prev nil means the
// product is new (no crossing to report); next nil means it is gone.
// Both list warehouses sorted by id, as levels built from the store do.
func Alerts(prev *Statuses, next *schemas.StockLevel) []schemas.StockAlert {
	if prev == nil || next == nil {
		return nil
	}
	var out []schemas.StockAlert
	j := 0
	for i := range next.Warehouses {
		w := &next.Warehouses[i]
		for j < len(prev.warehouses) && prev.warehouses[j].id < w.WarehouseID {
			j++
		}
		if j == len(prev.warehouses) || prev.warehouses[j].id != w.WarehouseID {
			continue // a warehouse row that is new: no crossing
		}
		from := prev.warehouses[j].status
		if kind, crossed := crossing(from, w.Status); crossed {
			id := w.WarehouseID
			out = append(out, schemas.StockAlert{
				ProductID: next.ProductID, WarehouseID: &id, Kind: kind,
				PreviousStatus: from, Status: w.Status,
				Available: int64(w.Available), LowStockThreshold: int64(w.LowStockThreshold),
				Position: next.Position, TxID: next.TxID, CommitTime: next.CommitTime,
			})
		}
	}
	if kind, crossed := crossing(prev.product, next.Status); crossed {
		var threshold int64
		for _, w := range next.Warehouses {
			threshold += int64(w.LowStockThreshold)
		}
		out = append(out, schemas.StockAlert{
			ProductID: next.ProductID, Kind: kind,
			PreviousStatus: prev.product, Status: next.Status,
			Available: next.Available, LowStockThreshold: threshold,
			Position: next.Position, TxID: next.TxID, CommitTime: next.CommitTime,
		})
	}
	return out
}

// crossing names the alert for a status change: entering LOW_STOCK or
// OUT_OF_STOCK, or returning to IN_STOCK from either.
func crossing(from, to string) (string, bool) {
	if from == to {
		return "", false
	}
	switch to {
	case schemas.StatusLowStock:
		return schemas.AlertLowStock, true
	case schemas.StatusOutOfStock:
		return schemas.AlertOutOfStock, true
	}
	return schemas.AlertBackInStock, true
}
