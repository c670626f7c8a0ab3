package schemas

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

// Bounds of the contract. Every reader in the project decodes with them, so
// that a record nobody meant to write (a few bytes claiming a billion
// warehouses, a string of a gigabyte, a 10 MB value) costs a bounded
// allocation and an error, never the process. The source schema enforces the
// string bounds on new writes (migration 0003), so the producer never writes
// a value its own readers would reject.
const (
	// MaxValueBytes is the largest value a reader decodes: Kafka's default
	// max.message.bytes (1 MiB and a record batch header). A product at the
	// most warehouses the contract allows stays well below it.
	MaxValueBytes = 1<<20 + 12
	// MaxIDBytes bounds a product or warehouse id (UTF-8 bytes).
	MaxIDBytes = 256
	// MaxStringBytes bounds every other string of a value (change kinds,
	// change references).
	MaxStringBytes = 1024
	// MaxWarehouses bounds the warehouse rows of one product: 100 times the
	// design's 100 warehouses, and about what fits in MaxValueBytes.
	MaxWarehouses = 10_000
)

// ErrOutOfBounds marks a value that breaks the contract's bounds or shape.
var ErrOutOfBounds = errors.New("value breaks the contract")

// bounded is the Avro API every decode of this package goes through: strings
// and arrays are refused past the contract's bounds before anything of their
// claimed size is allocated (hamba/avro sizes them from the length prefix).
var bounded = avro.Config{
	MaxByteSliceSize:  MaxStringBytes,
	MaxSliceAllocSize: MaxWarehouses,
}.Freeze()

// boundsError marks the decoder's refusals of a length past the bounds as
// ErrOutOfBounds. hamba/avro reports them only in words, naming the
// setting; a change of its wording leaves them plain decode errors, which
// readers treat the same way but label "undecodable".
func boundsError(err error) error {
	if msg := err.Error(); strings.Contains(msg, "MaxByteSliceSize") || strings.Contains(msg, "MaxSliceAllocSize") {
		return fmt.Errorf("%w: %v", ErrOutOfBounds, err)
	}
	return err
}

// CheckID reports whether s can be a product or warehouse id: non-empty,
// at most MaxIDBytes of valid UTF-8, without control characters.
func CheckID(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty id", ErrOutOfBounds)
	case len(s) > MaxIDBytes:
		return fmt.Errorf("%w: id of %d bytes (at most %d)", ErrOutOfBounds, len(s), MaxIDBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: id %q is not valid UTF-8", ErrOutOfBounds, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: id %q holds a control character", ErrOutOfBounds, s)
		}
	}
	return nil
}

// CheckLevel reports whether l is a stock.levels.v1 value the producer could
// have written under key: the key's product, at least one warehouse, at most
// MaxWarehouses sorted by id without repeats, no negative quantity, totals
// and statuses that follow from the rows, and a position. Valid Avro of
// another record type, or of this one filled with noise, fails here.
func CheckLevel(key string, l *StockLevel) error {
	if err := CheckID(key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if l.ProductID != key {
		// Compaction and partitioning go by the key: a value filed under
		// another product's key would never be deleted by its tombstone.
		return fmt.Errorf("%w: key %q carries product %q", ErrOutOfBounds, key, l.ProductID)
	}
	n := len(l.Warehouses)
	if n == 0 || n > MaxWarehouses {
		return fmt.Errorf("%w: %d warehouses (want 1..%d; no rows is a tombstone)", ErrOutOfBounds, n, MaxWarehouses)
	}
	if l.Position.LSN <= 0 || l.Position.Index < 0 {
		return fmt.Errorf("%w: position %d:%d", ErrOutOfBounds, l.Position.LSN, l.Position.Index)
	}
	var onHand, reserved, safety, incoming, avail, threshold int64
	for i := range l.Warehouses {
		w := &l.Warehouses[i]
		if err := CheckID(w.WarehouseID); err != nil {
			return fmt.Errorf("warehouse %d: %w", i, err)
		}
		if i > 0 && l.Warehouses[i-1].WarehouseID >= w.WarehouseID {
			return fmt.Errorf("%w: warehouses not sorted by id or repeated at %q", ErrOutOfBounds, w.WarehouseID)
		}
		if w.OnHand < 0 || w.Reserved < 0 || w.SafetyStock < 0 || w.Incoming < 0 || w.LowStockThreshold < 0 {
			return fmt.Errorf("%w: warehouse %q has a negative quantity", ErrOutOfBounds, w.WarehouseID)
		}
		if int64(w.Available) != int64(w.OnHand)-int64(w.Reserved)-int64(w.SafetyStock) {
			return fmt.Errorf("%w: warehouse %q available %d is not on_hand - reserved - safety_stock", ErrOutOfBounds, w.WarehouseID, w.Available)
		}
		if w.Status != Status(int64(w.Available), int64(w.LowStockThreshold)) {
			return fmt.Errorf("%w: warehouse %q status %s does not follow from its stock", ErrOutOfBounds, w.WarehouseID, w.Status)
		}
		if len(w.LastChangeKind) > MaxStringBytes || len(w.LastChangeRef) > MaxStringBytes {
			return fmt.Errorf("%w: warehouse %q change kind or reference too long", ErrOutOfBounds, w.WarehouseID)
		}
		onHand += int64(w.OnHand)
		reserved += int64(w.Reserved)
		safety += int64(w.SafetyStock)
		incoming += int64(w.Incoming)
		avail += int64(w.Available)
		threshold += int64(w.LowStockThreshold)
	}
	if l.OnHand != onHand || l.Reserved != reserved || l.SafetyStock != safety || l.Incoming != incoming || l.Available != avail {
		return fmt.Errorf("%w: product totals do not sum its warehouses", ErrOutOfBounds)
	}
	if l.Status != Status(avail, threshold) {
		return fmt.Errorf("%w: product status %s does not follow from its stock", ErrOutOfBounds, l.Status)
	}
	return nil
}

// DecodeLevelRecord decodes and checks a stock.levels.v1 value filed under
// key (not a tombstone): DecodeLevel, then CheckLevel. Every error it returns
// means the record is not one the producer wrote.
func DecodeLevelRecord(key, value []byte) (*StockLevel, error) {
	l, err := DecodeLevel(value)
	if err != nil {
		return nil, err
	}
	if err := CheckLevel(string(key), l); err != nil {
		return nil, fmt.Errorf("decoding %s value: %w", TopicLevels, err)
	}
	return l, nil
}
