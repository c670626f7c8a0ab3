package statestore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Apply writes a period's changes (nil: none) and the meta in one atomic
// batch: clean and matching mark, or not clean when mark is empty (changes
// written ahead of Kafka). Meant for the committer, beside the handler's
// reads; it reads only entries the view no longer changes.
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
	if err := s.db.Apply(b, pebble.NoSync); err != nil {
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
		prefix := rowPrefix(nil, e.id)
		if e.replaced {
			if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
				return err
			}
			for i := range e.rows {
				key = rowKey(key[:0], e.id, e.rows[i].WarehouseID)
				val = encodeRow(val[:0], &e.rows[i])
				if err := b.Set(key, val, nil); err != nil {
					return err
				}
			}
		} else {
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
