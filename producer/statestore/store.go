// Package statestore keeps the producer's per-product state (every
// inventory row of every product, so that one row change can be turned into
// the product's whole level) on local disk, in Pebble, behind a bounded
// cache in memory: the producer's memory follows its configuration, not the
// size of the catalog.
//
// The store is a copy of what Kafka committed, never a source of truth. It
// records, in the same atomic batch as the rows it reflects, the mark of the
// Kafka checkpoint they match, or that it matches none (written ahead of
// Kafka, or half rebuilt). A caller must use it only when that mark is the
// checkpoint Kafka holds, and rebuild it from Kafka otherwise. It knows
// nothing of Kafka or PostgreSQL.
package statestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/stockpipe/stock/producer/change"
)

// Format is the version of the key and value encoding; a store of another
// format is rebuilt.
const Format = 1

// Meta is what the store says of itself.
type Meta struct {
	Format int `json:"format"`
	// Owner names the deployment whose Kafka the rows were read from or
	// written to; a store of another owner is never used.
	Owner string `json:"owner"`
	// Clean is false while the store may differ from every Kafka
	// checkpoint: rows written ahead of Kafka (the parts of a source
	// transaction too large to hold, a snapshot under way) or a rebuild
	// under way.
	Clean bool `json:"clean"`
	// Mark identifies the Kafka checkpoint the rows match, when Clean.
	Mark     string `json:"mark,omitempty"`
	Rows     int64  `json:"rows"`
	Products int64  `json:"products"`
}

// Options of a store.
type Options struct {
	// Dir holds the store; it is created if missing. One process at a time.
	Dir string
	// CacheBytes is Pebble's block cache.
	CacheBytes int64
	// MemTableBytes is the size of one of Pebble's two memtables.
	MemTableBytes int64
	Log           *slog.Logger
}

// ErrLocked is returned by Open when another process holds the store.
var ErrLocked = errors.New("state store is in use by another process")

// Store is the on-disk state. Reads may run beside Apply (the handler reads
// while the committer applies); one View at a time uses it.
type Store struct {
	opts Options
	lock *pebble.Lock
	db   *pebble.DB
	// applied is the last View period whose changes are in the store.
	applied atomic.Uint64
	// broken is set on the first failed read or write: Close then removes
	// the files, so the next Open starts empty and the state is rebuilt
	// instead of failing on the same damage for ever.
	broken atomic.Bool
}

// Open opens the store in opts.Dir. A store that cannot be opened (damaged
// files, another format of Pebble's) is removed and opened empty: it is only
// ever a copy, and the caller rebuilds what a store lacks. wiped says so.
func Open(opts Options) (s *Store, wiped bool, err error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, false, fmt.Errorf("creating state dir %s: %w", opts.Dir, err)
	}
	lock, err := pebble.LockDirectory(opts.Dir, vfs.Default)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s: %v", ErrLocked, opts.Dir, err)
	}
	s = &Store{opts: opts, lock: lock}
	if err := s.open(); err != nil {
		opts.Log.Warn("state store unreadable; starting it empty", "dir", opts.Dir, "error", err)
		if err := s.removeFiles(); err != nil {
			lock.Close()
			return nil, false, err
		}
		if err := s.open(); err != nil {
			lock.Close()
			return nil, false, err
		}
		wiped = true
	}
	return s, wiped, nil
}

func (s *Store) open() error {
	cache := pebble.NewCache(max(s.opts.CacheBytes, 1<<20))
	defer cache.Unref() // the DB holds its own reference
	o := &pebble.Options{
		Cache: cache, Lock: s.lock, Logger: pebbleLog{s.opts.Log},
		MemTableSize: uint64(max(s.opts.MemTableBytes, 4<<20)), MemTableStopWritesThreshold: 2,
		// A bulk load (snapshot, rebuild) fills L0 fast; let compactions
		// catch up rather than stall the writer.
		L0CompactionThreshold: 4, L0StopWritesThreshold: 24,
		MaxOpenFiles: 256,
	}
	db, err := pebble.Open(s.opts.Dir, o)
	if err != nil {
		return fmt.Errorf("opening state store %s: %w", s.opts.Dir, err)
	}
	s.db = db
	return nil
}

// removeFiles deletes everything in the directory but Pebble's lock file.
func (s *Store) removeFiles() error {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("listing state dir: %w", err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.opts.Dir, e.Name())); err != nil {
			return fmt.Errorf("removing state store file: %w", err)
		}
	}
	return nil
}

// Reset empties the store (before a rebuild): no meta, no rows.
func (s *Store) Reset() error {
	if err := s.db.Close(); err != nil {
		s.opts.Log.Warn("closing state store before reset", "error", err)
	}
	s.db = nil
	if err := s.removeFiles(); err != nil {
		return err
	}
	s.broken.Store(false)
	return s.open()
}

// Close closes the store; a store that failed a read or write is removed.
func (s *Store) Close() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	if s.broken.Load() {
		s.opts.Log.Warn("state store failed; removing it so that the next start rebuilds it", "dir", s.opts.Dir)
		err = errors.Join(err, s.removeFiles())
	}
	return errors.Join(err, s.lock.Close())
}

// fail marks the store broken and returns err.
func (s *Store) fail(err error) error {
	s.broken.Store(true)
	return err
}

// Meta returns the store's meta; ok is false when there is none (a new or
// reset store).
func (s *Store) Meta() (m Meta, ok bool, err error) {
	v, closer, err := s.db.Get(metaKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return m, false, nil
	}
	if err != nil {
		return m, false, s.fail(fmt.Errorf("reading state store meta: %w", err))
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &m); err != nil {
		return m, false, s.fail(fmt.Errorf("%w: meta: %v", errCorrupt, err))
	}
	return m, true, nil
}

func setMeta(b *pebble.Batch, m Meta) error {
	m.Format = Format
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding state store meta: %w", err)
	}
	return b.Set(metaKey, v, nil)
}

// MarkUnclean records, durably, that the store is about to differ from
// Kafka, keeping its counts. Every write after it is behind it in Pebble's
// log, so no crash can leave those writes under a clean mark.
func (s *Store) MarkUnclean(owner string) error {
	m, _, err := s.Meta()
	if err != nil {
		return err
	}
	m.Owner, m.Clean, m.Mark = owner, false, ""
	b := s.db.NewBatch()
	defer b.Close()
	if err := setMeta(b, m); err != nil {
		return err
	}
	if err := s.db.Apply(b, pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("marking state store unclean: %w", err))
	}
	return nil
}

// readProduct returns a product's rows, sorted by warehouse id.
func (s *Store) readProduct(product string, dec rowDecoder) ([]change.Row, error) {
	prefix := productPrefix(nil, product)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, s.fail(fmt.Errorf("reading state of %s: %w", product, err))
	}
	var rows []change.Row
	ok := it.First()
	if ok && len(it.Key()) == len(prefix)+1 && it.Key()[len(prefix)] == tagHeader {
		// The header first: its count sizes the rows exactly (appending
		// them one by one left a third of the slice unused on average,
		// memory the view's budget did not see).
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, s.fail(fmt.Errorf("reading state of %s: %w", product, err))
		}
		_, n, err := decodeHeader(product, v)
		if err != nil {
			it.Close()
			return nil, s.fail(err)
		}
		rows = make([]change.Row, 0, n)
		ok = it.Next()
	}
	prefix = append(prefix, tagRow)
	for ; ok; ok = it.Next() {
		key := it.Key()
		if len(key) < len(prefix) || key[len(prefix)-1] != tagRow {
			it.Close()
			return nil, s.fail(fmt.Errorf("%w: key %q in the range of %s", errCorrupt, key, product))
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, s.fail(fmt.Errorf("reading state of %s: %w", product, err))
		}
		r, err := dec.decode(product, dec.str(key[len(prefix):]), v)
		if err != nil {
			it.Close()
			return nil, s.fail(err)
		}
		rows = append(rows, r)
	}
	if err := it.Close(); err != nil {
		return nil, s.fail(fmt.Errorf("reading state of %s: %w", product, err))
	}
	return rows, nil
}

// ReadProduct returns a product's rows as the store holds them, sorted by
// warehouse id (for tests and tools; the producer reads through a View).
func (s *Store) ReadProduct(product string) ([]change.Row, error) {
	return s.readProduct(product, rowDecoder{})
}

// EachProduct calls fn for every product the store holds, with the
// consistent point of the snapshot that last wrote it (0: another writer)
// and its number of rows, in key order. It reads a point-in-time view: writes made meanwhile,
// fn's included, are not seen.
func (s *Store) EachProduct(fn func(product string, snapshot uint64, rows int64) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindProduct}, UpperBound: []byte{kindProduct + 1}})
	if err != nil {
		return s.fail(fmt.Errorf("listing state products: %w", err))
	}
	defer it.Close()
	for ok := it.First(); ok; {
		product, rest, valid := splitProductKey(it.Key())
		if !valid || len(rest) != 1 || rest[0] != tagHeader {
			return s.fail(fmt.Errorf("%w: key %q where a product header belongs", errCorrupt, it.Key()))
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return s.fail(fmt.Errorf("listing state products: %w", err))
		}
		id := string(product)
		snap, rows, err := decodeHeader(id, v)
		if err != nil {
			return s.fail(err)
		}
		if err := fn(id, snap, rows); err != nil {
			return err
		}
		// Past the product's rows, to the next header.
		ok = it.SeekGE(prefixEnd(productPrefix(nil, id)))
	}
	if err := it.Error(); err != nil {
		return s.fail(fmt.Errorf("listing state products: %w", err))
	}
	return nil
}

// Count counts the rows and products the store holds, from the products'
// headers.
func (s *Store) Count() (rows, products int64, err error) {
	err = s.EachProduct(func(_ string, _ uint64, n int64) error {
		rows += n
		products++
		return nil
	})
	return rows, products, err
}

// DiskBytes is the size of the store's files.
func (s *Store) DiskBytes() uint64 { return s.db.Metrics().DiskSpaceUsage() }

// pebbleLog sends Pebble's messages to slog: its informational ones at
// debug (one per flush and compaction), errors at error.
type pebbleLog struct{ log *slog.Logger }

func (l pebbleLog) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLog) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLog) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	panic(msg)
}
