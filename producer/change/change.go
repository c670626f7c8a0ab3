// Package change is the producer's vocabulary for what the source emits: an
// inventory_levels row, a row change and the transaction around it. It holds
// types only and must never do I/O.
package change

import (
	"time"

	"github.com/stockpipe/stock/internal/position"
)

// Row is one inventory_levels row.
type Row struct {
	ProductID         string
	WarehouseID       string
	OnHand            int32
	Reserved          int32
	SafetyStock       int32
	Incoming          int32
	LowStockThreshold int32
	Version           int64
	LastChangeKind    string
	LastChangeRef     string
	UpdatedAt         time.Time
}

// Available is on_hand - reserved - safety_stock; negative means oversold.
func (r *Row) Available() int32 { return r.OnHand - r.Reserved - r.SafetyStock }

// Op is what happened to a row.
type Op byte

// Operations, named as Debezium names them, plus truncate which applies to
// the whole table.
const (
	OpInsert   Op = 'c'
	OpUpdate   Op = 'u'
	OpDelete   Op = 'd'
	OpRead     Op = 'r'
	OpTruncate Op = 't'
)

// Key identifies a row.
type Key struct {
	ProductID   string
	WarehouseID string
}

// Change is one row change inside a transaction. For OpDelete only Key is
// known from the source (replica identity default); the producer's state
// supplies the before image. For OpUpdate, OldKey is set when the primary key
// itself changed.
type Change struct {
	Op       Op
	Key      Key
	OldKey   *Key
	After    *Row
	Position position.Position
}

// Tx describes a committed source transaction.
type Tx struct {
	Xid        uint32
	CommitLSN  uint64
	EndLSN     uint64
	CommitTime time.Time
}

// SignalResnapshot is the logical decoding message prefix that asks the
// producer to emit the current state of some or all products again. It is
// sent with pg_logical_emit_message(true, SignalResnapshot, content) so it
// arrives in commit order with the changes around it; content is a JSON
// object {"product_ids": [...]} (empty or missing: every product).
const SignalResnapshot = "stock.resnapshot"

// Signal is a control message read from the stream.
type Signal struct {
	Prefix   string
	Content  []byte
	Position position.Position
}
