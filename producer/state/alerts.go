package state

import (
	"strings"

	"github.com/stockpipe/stock/producer/change"
	"github.com/stockpipe/stock/schemas"
)

// Statuses are what Alerts compares a product's new level with: the status
// of the product and of each of its warehouse rows before a change. The
// stream handler keeps them for every product a source transaction touches
// (50,000 of them in a million-row transaction), so the rows' statuses are
// packed into one string: per row, in warehouse id order as the store keeps
// them, a status code byte, the warehouse id and a zero byte (PostgreSQL
// text cannot hold one). A product of 20 rows costs about 200 bytes, a
// quarter of a slice of id and status pairs, and keeps no decoded row alive.
type Statuses struct {
	product string
	rows    string
}

// statusCodes are the statuses' codes in Statuses.rows.
var statusCodes = [...]string{schemas.StatusInStock, schemas.StatusLowStock, schemas.StatusOutOfStock}

func statusCode(status string) byte {
	for i, s := range statusCodes {
		if s == status {
			return byte(i)
		}
	}
	panic("unknown stock status " + status)
}

// nextRow reads the row at the head of rows: its warehouse id and status,
// and the rows after it.
func nextRow(rows string) (id, status, rest string) {
	end := 1 + strings.IndexByte(rows[1:], 0)
	return rows[1:end], statusCodes[rows[0]], rows[end+1:]
}

// StatusesOf returns the statuses of a product's rows (sorted by warehouse
// id, as the store keeps them), computed as Level computes them; nil for no
// rows.
func StatusesOf(rows []change.Row) *Statuses {
	if len(rows) == 0 {
		return nil
	}
	var b strings.Builder
	n := 0
	for i := range rows {
		n += len(rows[i].WarehouseID) + 2
	}
	b.Grow(n)
	var avail, threshold int64
	for i := range rows {
		r := &rows[i]
		a := r.Available()
		b.WriteByte(statusCode(schemas.Status(int64(a), int64(r.LowStockThreshold))))
		b.WriteString(r.WarehouseID)
		b.WriteByte(0)
		avail += int64(a)
		threshold += int64(r.LowStockThreshold)
	}
	return &Statuses{product: schemas.Status(avail, threshold), rows: b.String()}
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
	rest := prev.rows
	var id, from string
	have := rest != ""
	if have {
		id, from, rest = nextRow(rest)
	}
	for i := range next.Warehouses {
		w := &next.Warehouses[i]
		for have && id < w.WarehouseID {
			if have = rest != ""; have {
				id, from, rest = nextRow(rest)
			}
		}
		if !have || id != w.WarehouseID {
			continue // a warehouse row that is new: no crossing
		}
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
