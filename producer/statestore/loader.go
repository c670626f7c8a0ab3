package statestore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/stockpipe/stock/producer/change"
)

// loaderBatchBytes bounds one batch of a Loader: large enough that Pebble's
// per-batch cost is small beside the rows, small enough that a product of
// 10,000 warehouses and the batch around it stay a few MiB.
const loaderBatchBytes = 4 << 20

// Loader writes whole products in bulk (a rebuild from Kafka, a snapshot),
// in batches of a few MiB, so that it holds one batch in memory however many
// products pass through. Its writes go straight to the store: the caller
// marks the store unclean first (or starts from an empty one) and calls
// Finish with the Kafka checkpoint's mark once Kafka holds what it wrote.
//
// Writes are blind: a product replaces whatever the store held of it under
// one range deletion, without reading it first. Reading each product's
// header before writing it made a rebuild in Kafka's order (no order of
// product ids) three times slower.
type Loader struct {
	s        *Store
	owner    string
	b        *pebble.Batch
	key, val []byte
}

// NewLoader starts a bulk load for owner.
func (s *Store) NewLoader(owner string) *Loader {
	return &Loader{s: s, owner: owner, b: s.db.NewBatch()}
}

// SetProduct replaces every row of a product (rows sorted by warehouse id,
// all of the product); no rows removes it. snapshot is the consistent point
// of the snapshot writing it, 0 for anything else.
func (l *Loader) SetProduct(product string, rows []change.Row, snapshot uint64) error {
	prefix := productPrefix(l.key[:0], product)
	if err := l.b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return err
	}
	if len(rows) > 0 {
		l.val = encodeHeader(l.val[:0], snapshot, len(rows))
		if err := l.b.Set(productKey(l.key[:0], product), l.val, nil); err != nil {
			return err
		}
	}
	for i := range rows {
		l.key = rowKey(l.key[:0], product, rows[i].WarehouseID)
		l.val = encodeRow(l.val[:0], &rows[i])
		if err := l.b.Set(l.key, l.val, nil); err != nil {
			return err
		}
	}
	if l.b.Len() < loaderBatchBytes {
		return nil
	}
	return l.Flush()
}

// Flush applies the batch in hand, so that the store shows every product
// written so far.
func (l *Loader) Flush() error {
	if l.b.Empty() {
		return nil
	}
	if err := l.s.db.Apply(l.b, pebble.NoSync); err != nil {
		return l.s.fail(fmt.Errorf("writing state: %w", err))
	}
	l.b.Reset()
	return nil
}

// Finish applies what is left with the meta: the counts of what the store
// now holds, clean and matching mark, or not clean when mark is empty. It
// syncs, and with it everything the load wrote before.
func (l *Loader) Finish(mark string, rows, products int64) error {
	err := setMeta(l.b, Meta{Owner: l.owner, Clean: mark != "", Mark: mark, Rows: rows, Products: products})
	if err != nil {
		return err
	}
	if err := l.s.db.Apply(l.b, pebble.Sync); err != nil {
		return l.s.fail(fmt.Errorf("writing state: %w", err))
	}
	l.b.Reset()
	return nil
}

// Close releases the batch.
func (l *Loader) Close() { _ = l.b.Close() }
