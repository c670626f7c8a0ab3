// Package stockstatus holds the one rule that turns available stock into a
// status, shared by the Kafka contract (schemas), which stamps it on every
// record, and the query API, which recomputes it for filtered views. It is a
// pure function and must never do I/O or import anything of the project.
package stockstatus

// Statuses, as the Kafka contract and the API spell them.
const (
	InStock    = "IN_STOCK"
	LowStock   = "LOW_STOCK"
	OutOfStock = "OUT_OF_STOCK"
)

// Of derives a status from available stock and its low-stock threshold:
// nothing sellable is OUT_OF_STOCK, at or under the threshold is LOW_STOCK.
// A product total uses the sum of its warehouses' thresholds.
func Of(available, threshold int64) string {
	switch {
	case available <= 0:
		return OutOfStock
	case available <= threshold:
		return LowStock
	}
	return InStock
}
