package stockstore

import (
	"time"

	"github.com/stockpipe/stock/internal/position"
)

// Warehouse is one warehouse row of a product, as the query API serves it.
type Warehouse struct {
	WarehouseID       string `json:"warehouse_id"`
	OnHand            int64  `json:"on_hand"`
	Reserved          int64  `json:"reserved"`
	Available         int64  `json:"available"`
	Status            string `json:"status"`
	LowStockThreshold int64  `json:"low_stock_threshold"`
}

// Product is a product's stock as the query API serves it (DESIGN.md, "Query
// API answer shape"). The store keeps it encoded, ready to serve.
type Product struct {
	ProductID  string      `json:"product_id"`
	OnHand     int64       `json:"on_hand"`
	Reserved   int64       `json:"reserved"`
	Available  int64       `json:"available"`
	Status     string      `json:"status"`
	Warehouses []Warehouse `json:"warehouses"`
	// Position is the position.Position String form, "0/16B3748:3".
	Position   string    `json:"position"`
	CommitTime time.Time `json:"commit_time"`
}

// Snapshot is a product's full stock after one source transaction, the unit
// Apply writes. A Snapshot with Deleted set is a tombstone: the product has no
// warehouse rows left; only ProductID and Position matter then.
type Snapshot struct {
	ProductID  string
	Position   position.Position
	Deleted    bool
	OnHand     int64
	Reserved   int64
	Available  int64
	Status     string
	Warehouses []Warehouse
	CommitTime time.Time
}

// Product returns the served view of s.
func (s *Snapshot) Product() Product {
	whs := s.Warehouses
	if whs == nil {
		whs = []Warehouse{} // serve [] rather than null
	}
	return Product{
		ProductID:  s.ProductID,
		OnHand:     s.OnHand,
		Reserved:   s.Reserved,
		Available:  s.Available,
		Status:     s.Status,
		Warehouses: whs,
		Position:   s.Position.String(),
		CommitTime: s.CommitTime.UTC(),
	}
}

// Watermark records how far the projector has applied one partition of a
// topic: the offset of the last applied record, the position and source
// commit time it carried, and when it was applied. It is informational
// (readiness, lag, operators); consumers resume from Kafka's committed
// offsets, never from here.
type Watermark struct {
	Topic      string
	Partition  int32
	Offset     int64
	Position   position.Position
	CommitTime time.Time
	AppliedAt  time.Time
	// CaughtUp says the batch reached the partition's end as the projector
	// last saw it: nothing was waiting behind it when it was applied. A
	// partition that goes quiet after a backlog (a snapshot, a restart)
	// keeps the lateness of its last batch for good; caught up, that is
	// not lag.
	CaughtUp bool
}

// watermarkDoc is the stored JSON form of a Watermark.
type watermarkDoc struct {
	Offset     int64     `json:"offset"`
	Position   string    `json:"position"`
	CommitTime time.Time `json:"commit_time"`
	AppliedAt  time.Time `json:"applied_at"`
	CaughtUp   bool      `json:"caught_up,omitempty"`
}
