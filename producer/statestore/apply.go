package statestore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Apply writes a period's changes (nil: none) and the meta in one atomic
// batch: clean and matching mark, or not clean when mark is empty (changes
// written ahead of Kafka). Meant for the committer, beside the handler's
// reads; it reads only entries the view no longer changes.
//
// A clean write is synced: Pebble keeps unsynced log records in its own
// buffer until a 32 KiB block fills, and a producer killed then restarted
// found its store a few hundred milliseconds behind Kafka every time (a
// rebuild instead of a restart in seconds). An unclean one is not: lost,
// it leaves the store at its last clean mark, which is then still Kafka's.
func (s *Store) Apply(c *Changes, owner, mark string) error {
	b := s.db.NewBatch()
	defer b.Close()
	m := Meta{Owner: owner, Clean: mark != "", Mark: mark}
	if c != nil {
		m.Rows, m.Products = c.rows, c.products
		if err := writeChanges(b, c); err != nil {
			return err
		}
	} else {
		// The counts stay as the last write left them.
		old, _, err := s.Meta()
		if err != nil {
			return err
		}
		m.Rows, m.Products = old.Rows, old.Products
	}
	if err := setMeta(b, m); err != nil {
		return err
	}
	sync := pebble.NoSync
	if mark != "" {
		sync = pebble.Sync
	}
	if err := s.db.Apply(b, sync); err != nil {
		return s.fail(fmt.Errorf("writing state: %w", err))
	}
	if c != nil {
		s.applied.Store(c.period)
	}
	return nil
}

func writeChanges(b *pebble.Batch, c *Changes) error {
	var key, val []byte
	for _, e := range c.entries {
		for _, w := range e.changed {
			key = rowKey(key[:0], e.id, w)
			if i, ok := find(e.rows, w); ok {
				val = encodeRow(val[:0], &e.rows[i])
				if err := b.Set(key, val, nil); err != nil {
					return err
				}
			} else if err := b.Delete(key, nil); err != nil {
				return err
			}
		}
		key = productKey(key[:0], e.id)
		if len(e.rows) == 0 {
			if err := b.Delete(key, nil); err != nil {
				return err
			}
			continue
		}
		val = encodeHeader(val[:0], 0, len(e.rows))
		if err := b.Set(key, val, nil); err != nil {
			return err
		}
	}
	return nil
}
