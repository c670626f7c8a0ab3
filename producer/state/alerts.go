package state

import (
	"github.com/stockpipe/stock/schemas"
)

// Alerts returns the status crossings between two stock levels of one
// product, per warehouse and for the product total. prev nil means the
// product is new (no crossing to report); next nil means it is gone.
func Alerts(prev, next *schemas.StockLevel) []schemas.StockAlert {
	if prev == nil || next == nil {
		return nil
	}
	var out []schemas.StockAlert
	before := make(map[string]schemas.WarehouseStock, len(prev.Warehouses))
	for _, w := range prev.Warehouses {
		before[w.WarehouseID] = w
	}
	for _, w := range next.Warehouses {
		b, ok := before[w.WarehouseID]
		if !ok {
			continue
		}
		if kind, crossed := crossing(b.Status, w.Status); crossed {
			id := w.WarehouseID
			out = append(out, schemas.StockAlert{
				ProductID: next.ProductID, WarehouseID: &id, Kind: kind,
				PreviousStatus: b.Status, Status: w.Status,
				Available: int64(w.Available), LowStockThreshold: int64(w.LowStockThreshold),
				Position: next.Position, TxID: next.TxID, CommitTime: next.CommitTime,
			})
		}
	}
	if kind, crossed := crossing(prev.Status, next.Status); crossed {
		var threshold int64
		for _, w := range next.Warehouses {
			threshold += int64(w.LowStockThreshold)
		}
		out = append(out, schemas.StockAlert{
			ProductID: next.ProductID, Kind: kind,
			PreviousStatus: prev.Status, Status: next.Status,
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
