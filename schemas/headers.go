package schemas

// CloudEvents Kafka protocol binding (binary mode) header names and the event
// types the producer stamps on records.
const (
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSpecVersion = "ce_specversion"
	HeaderContentType = "content-type"

	// SourcePrefix begins the ce_source of every record the producer
	// writes ("/stock-producer/<slot>").
	SourcePrefix = "/stock-producer/"

	SpecVersion = "1.0"
	ContentType = "application/avro"
)

// Event types, chosen from the change kind stamped by the write function.
const (
	TypeUpdated     = "warehouse.stock.updated"
	TypeAdjusted    = "warehouse.stock.adjusted"
	TypeTransferred = "warehouse.stock.transferred"
	TypeReserved    = "warehouse.stock.reserved"
	TypeReleased    = "warehouse.stock.released"
	TypeLowStock    = "warehouse.inventory.low_stock"
)

// EventType maps a last_change_kind to its CloudEvents type.
func EventType(changeKind string) string {
	switch changeKind {
	case "adjust", "count":
		return TypeAdjusted
	case "transfer":
		return TypeTransferred
	case "reserve":
		return TypeReserved
	case "release", "expire", "commit":
		return TypeReleased
	}
	return TypeUpdated
}
