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
	s     *Store
	owner string
	b     *pebble.Batch // being filled
	// A full batch is applied on a goroutine of its own while the next one
	// fills (the caller decoding Kafka records or PostgreSQL rows meanwhile):
	// a rebuild of 10,000,000 rows took a tenth longer with the two in
	// turn. applying is that batch, done its result; spare is an applied
	// batch to fill next.
	applying, spare *pebble.Batch
	done            chan error
	key, val        []byte
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
	return l.startApply()
}

// startApply hands the batch in hand to a goroutine that applies it, after
// the one before it is applied.
func (l *Loader) startApply() error {
	if err := l.wait(); err != nil {
		return err
	}
	b, done := l.b, make(chan error, 1)
	go func() { done <- l.s.db.Apply(b, pebble.NoSync) }()
	l.applying, l.done = b, done
	if l.b = l.spare; l.b == nil {
		l.b = l.s.db.NewBatch()
	}
	l.spare = nil
	return nil
}

// wait waits for the batch being applied, if any.
func (l *Loader) wait() error {
	if l.done == nil {
		return nil
	}
	err := <-l.done
	l.done = nil
	l.applying.Reset()
	l.spare, l.applying = l.applying, nil
	if err != nil {
		return l.s.fail(fmt.Errorf("writing state: %w", err))
	}
	return nil
}

// Flush applies everything written so far: the store then shows it.
func (l *Loader) Flush() error {
	if !l.b.Empty() {
		if err := l.startApply(); err != nil {
			return err
		}
	}
	return l.wait()
}

// Finish applies what is left with the meta: the counts of what the store
// now holds, clean and matching mark, or not clean when mark is empty. It
// syncs, and with it everything the load wrote before.
func (l *Loader) Finish(mark string, rows, products int64) error {
	if err := l.wait(); err != nil {
		return err
	}
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

// Close waits for a batch being applied and releases the batches.
func (l *Loader) Close() {
	_ = l.wait()
	for _, b := range []*pebble.Batch{l.b, l.spare} {
		if b != nil {
			_ = b.Close()
		}
	}
}
