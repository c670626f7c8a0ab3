package statestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/stockpipe/stock/producer/change"
)

// The key space. One byte of kind first, so each kind is one contiguous
// range:
//
//	m                                the store's meta (JSON, see Meta)
//	r <uvarint len> <product> 0x00   a product's header, there while it has
//	                                 rows: the snapshot that last wrote it
//	                                 and its number of rows (encodeHeader)
//	r <uvarint len> <product> 0x01 <warehouse>
//	                                 one inventory row (encodeRow)
//
// Everything of one product is one range, whatever bytes the ids hold (the
// length comes first), header first, then the rows sorted by warehouse id
// as bytes (the order of the levels the producer writes). A snapshot writes
// products in order, so Pebble's flushes do not overlap and move down the
// tree without being rewritten; headers kept in a range of their own made
// every flush overlap every other, and compactions took most of a load.
//
// Rows are keyed one by one rather than stored as one value per product: a
// stream change rewrites one row (about 60 bytes) instead of the product's
// every row (5 KB at 100 warehouses), which is most of the write volume
// under load.
const (
	kindMeta    = 'm'
	kindProduct = 'r'
	tagHeader   = 0x00
	tagRow      = 0x01
)

var metaKey = []byte{kindMeta}

// productPrefix is the prefix of every key of product.
func productPrefix(dst []byte, product string) []byte {
	dst = append(dst, kindProduct)
	dst = binary.AppendUvarint(dst, uint64(len(product)))
	return append(dst, product...)
}

func productKey(dst []byte, product string) []byte {
	return append(productPrefix(dst, product), tagHeader)
}

// rowPrefix is the prefix every row key of product shares.
func rowPrefix(dst []byte, product string) []byte {
	return append(productPrefix(dst, product), tagRow)
}

func rowKey(dst []byte, product, warehouse string) []byte {
	return append(rowPrefix(dst, product), warehouse...)
}

// splitProductKey returns the product of a key of the product range and
// the rest of the key after it.
func splitProductKey(key []byte) (product, rest []byte, ok bool) {
	if len(key) == 0 || key[0] != kindProduct {
		return nil, nil, false
	}
	n, k := binary.Uvarint(key[1:])
	if k <= 0 || n > uint64(len(key)-1-k) {
		return nil, nil, false
	}
	return key[1+k : 1+k+int(n)], key[1+k+int(n):], true
}

// prefixEnd is the smallest key after every key that starts with prefix
// (nil when there is none: a prefix of 0xff bytes only).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// errCorrupt marks a value the store cannot decode: the store is then not
// trusted and is rebuilt from Kafka.
var errCorrupt = errors.New("state store value corrupt")

// encodeRow appends the row's columns but its key: varints for the
// numbers, length-prefixed strings, updated_at as Unix seconds and
// nanoseconds (so any time, the zero one included, comes back equal).
func encodeRow(dst []byte, r *change.Row) []byte {
	dst = binary.AppendVarint(dst, int64(r.OnHand))
	dst = binary.AppendVarint(dst, int64(r.Reserved))
	dst = binary.AppendVarint(dst, int64(r.SafetyStock))
	dst = binary.AppendVarint(dst, int64(r.Incoming))
	dst = binary.AppendVarint(dst, int64(r.LowStockThreshold))
	dst = binary.AppendVarint(dst, r.Version)
	dst = binary.AppendVarint(dst, r.UpdatedAt.Unix())
	dst = binary.AppendVarint(dst, int64(r.UpdatedAt.Nanosecond()))
	dst = binary.AppendUvarint(dst, uint64(len(r.LastChangeKind)))
	dst = append(dst, r.LastChangeKind...)
	dst = binary.AppendUvarint(dst, uint64(len(r.LastChangeRef)))
	return append(dst, r.LastChangeRef...)
}

// rowDecoder decodes row values; intern, when set, shares the copies of
// strings that repeat across rows (warehouse ids, change kinds).
type rowDecoder struct {
	intern func([]byte) string
}

func (d rowDecoder) str(b []byte) string {
	if d.intern != nil {
		return d.intern(b)
	}
	return string(b)
}

func (d rowDecoder) decode(product, warehouse string, v []byte) (change.Row, error) {
	r := change.Row{ProductID: product, WarehouseID: warehouse}
	var n [8]int64
	for i := range n {
		x, k := binary.Varint(v)
		if k <= 0 {
			return r, fmt.Errorf("%w: row %s/%s: bad number %d", errCorrupt, product, warehouse, i)
		}
		n[i], v = x, v[k:]
	}
	var s [2][]byte
	for i := range s {
		l, k := binary.Uvarint(v)
		if k <= 0 || l > uint64(len(v)-k) {
			return r, fmt.Errorf("%w: row %s/%s: bad string %d", errCorrupt, product, warehouse, i)
		}
		s[i], v = v[k:k+int(l)], v[k+int(l):]
	}
	if len(v) != 0 {
		return r, fmt.Errorf("%w: row %s/%s: %d bytes left over", errCorrupt, product, warehouse, len(v))
	}
	for i := 0; i < 5; i++ {
		if n[i] != int64(int32(n[i])) {
			return r, fmt.Errorf("%w: row %s/%s: number %d out of range", errCorrupt, product, warehouse, i)
		}
	}
	r.OnHand, r.Reserved, r.SafetyStock, r.Incoming = int32(n[0]), int32(n[1]), int32(n[2]), int32(n[3])
	r.LowStockThreshold, r.Version = int32(n[4]), n[5]
	r.UpdatedAt = time.Unix(n[6], n[7]).UTC()
	r.LastChangeKind = d.str(s[0])
	r.LastChangeRef = string(s[1])
	return r, nil
}

// encodeHeader is a product header's value: the consistent point of the
// snapshot that last wrote the product (0 when something else did) and its
// number of rows (for the counts, when a rebuild replaces it).
func encodeHeader(dst []byte, snapshot uint64, rows int) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(dst, snapshot), uint64(rows))
}

func decodeHeader(product string, v []byte) (snapshot uint64, rows int64, err error) {
	snapshot, k := binary.Uvarint(v)
	if k <= 0 {
		return 0, 0, fmt.Errorf("%w: header of %s", errCorrupt, product)
	}
	n, k2 := binary.Uvarint(v[k:])
	if k2 <= 0 || k+k2 != len(v) || n > 1<<31 {
		return 0, 0, fmt.Errorf("%w: header of %s", errCorrupt, product)
	}
	return snapshot, int64(n), nil
}
