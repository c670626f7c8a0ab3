// Package schemas owns the Kafka contract: topic names, the Avro schemas
// (the .avsc files beside this file are the documented contract other teams
// build on) and the Go types that encode and decode them. It must never
// depend on PostgreSQL, Redis or HTTP code.
package schemas

import (
	_ "embed"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstatus"
)

// Topic names of version 1 of the contract.
const (
	TopicLevels  = "stock.levels.v1"
	TopicChanges = "stock.changes.v1"
	TopicAlerts  = "stock.alerts.v1"
)

// Stock statuses, shared by warehouse rows, product totals and alerts.
const (
	StatusInStock    = stockstatus.InStock
	StatusLowStock   = stockstatus.LowStock
	StatusOutOfStock = stockstatus.OutOfStock
)

// Alert kinds.
const (
	AlertLowStock    = "LOW_STOCK"
	AlertOutOfStock  = "OUT_OF_STOCK"
	AlertBackInStock = "BACK_IN_STOCK"
)

// Change operations, as Debezium names them.
const (
	OpCreate = "c"
	OpUpdate = "u"
	OpDelete = "d"
	OpRead   = "r"
)

var (
	//go:embed stock_levels.avsc
	levelsSchemaText string
	//go:embed stock_changes.avsc
	changesSchemaText string
	//go:embed stock_alerts.avsc
	alertsSchemaText string
)

// Status derives a status from available stock and its low-stock threshold
// (see stockstatus.Of, the one place the rule lives).
func Status(available, threshold int64) string { return stockstatus.Of(available, threshold) }

// Position is the Avro form of position.Position.
type Position struct {
	LSN   int64 `avro:"lsn"`
	Index int32 `avro:"index"`
}

// PositionOf converts to the Avro form.
func PositionOf(p position.Position) Position {
	return Position{LSN: int64(p.LSN), Index: int32(p.Index)}
}

// Value converts back to position.Position.
func (p Position) Value() position.Position {
	return position.Position{LSN: uint64(p.LSN), Index: uint32(p.Index)}
}

// WarehouseStock is one warehouse row inside a StockLevel.
type WarehouseStock struct {
	WarehouseID       string    `avro:"warehouse_id"`
	OnHand            int32     `avro:"on_hand"`
	Reserved          int32     `avro:"reserved"`
	SafetyStock       int32     `avro:"safety_stock"`
	Incoming          int32     `avro:"incoming"`
	Available         int32     `avro:"available"`
	LowStockThreshold int32     `avro:"low_stock_threshold"`
	Status            string    `avro:"status"`
	Version           int64     `avro:"version"`
	LastChangeKind    string    `avro:"last_change_kind"`
	LastChangeRef     string    `avro:"last_change_ref"`
	UpdatedAt         time.Time `avro:"updated_at"`
}

// StockLevel is the value of stock.levels.v1: a product's full stock after a
// source transaction.
type StockLevel struct {
	ProductID   string           `avro:"product_id"`
	OnHand      int64            `avro:"on_hand"`
	Reserved    int64            `avro:"reserved"`
	SafetyStock int64            `avro:"safety_stock"`
	Incoming    int64            `avro:"incoming"`
	Available   int64            `avro:"available"`
	Status      string           `avro:"status"`
	Warehouses  []WarehouseStock `avro:"warehouses"`
	Position    Position         `avro:"position"`
	TxID        int64            `avro:"tx_id"`
	CommitTime  time.Time        `avro:"commit_time"`
	Snapshot    bool             `avro:"snapshot"`
}

// InventoryRow is one inventory_levels row as carried by stock.changes.v1.
type InventoryRow struct {
	ProductID         string    `avro:"product_id"`
	WarehouseID       string    `avro:"warehouse_id"`
	OnHand            int32     `avro:"on_hand"`
	Reserved          int32     `avro:"reserved"`
	SafetyStock       int32     `avro:"safety_stock"`
	Incoming          int32     `avro:"incoming"`
	LowStockThreshold int32     `avro:"low_stock_threshold"`
	Version           int64     `avro:"version"`
	LastChangeKind    string    `avro:"last_change_kind"`
	LastChangeRef     string    `avro:"last_change_ref"`
	UpdatedAt         time.Time `avro:"updated_at"`
}

// StockChange is the value of stock.changes.v1: one row change.
type StockChange struct {
	Op          string        `avro:"op"`
	ProductID   string        `avro:"product_id"`
	WarehouseID string        `avro:"warehouse_id"`
	Before      *InventoryRow `avro:"before"`
	After       *InventoryRow `avro:"after"`
	ChangeKind  string        `avro:"change_kind"`
	ChangeRef   string        `avro:"change_ref"`
	Position    Position      `avro:"position"`
	TxID        int64         `avro:"tx_id"`
	CommitTime  time.Time     `avro:"commit_time"`
}

// StockAlert is the value of stock.alerts.v1: a status crossing.
type StockAlert struct {
	ProductID         string    `avro:"product_id"`
	WarehouseID       *string   `avro:"warehouse_id"`
	Kind              string    `avro:"kind"`
	PreviousStatus    string    `avro:"previous_status"`
	Status            string    `avro:"status"`
	Available         int64     `avro:"available"`
	LowStockThreshold int64     `avro:"low_stock_threshold"`
	Position          Position  `avro:"position"`
	TxID              int64     `avro:"tx_id"`
	CommitTime        time.Time `avro:"commit_time"`
}
