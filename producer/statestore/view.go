package statestore

import (
	"slices"
	"sort"
	"unsafe"

	"github.com/stockpipe/stock/producer/change"
)

// View is the stream handler's state: products read from the store and
// kept decoded in a bounded cache, and the changes not yet in the store.
//
// Changes reach the store in periods. Everything changed since the last
// Advance is the current period; Pending hands it over (to be applied once
// Kafka committed the records built from it), Advance starts the next. A
// product with a change not yet applied stays in memory, pinned, and is
// read from there: the store would show an older state. Entries handed over
// are never modified again (a later change copies them), so the committer
// may encode them while the handler goes on.
//
// Not safe for concurrent use, but for Store.Apply of what Pending returned.
type View struct {
	s        *Store
	budget   int64
	entries  map[string]*entry
	lru      entry // sentinel: lru.next is the most recently used
	bytes    int64 // estimated bytes of every entry in the map
	period   uint64
	dirty    []*entry // changed in the current period
	dirtyB   int64    // bytes of dirty
	inFlight []*Changes
	// rows and products count the state, pending changes included.
	rows, products int64
	intern         map[string]string
}

// entry is one product: all its rows, sorted by warehouse id (none: the
// product does not exist).
type entry struct {
	id   string
	rows []change.Row
	// period is the period the entry was last changed in (0: as read).
	period uint64
	// changed lists, once each, the warehouses whose rows changed in
	// period (set, removed or cleared): Apply writes or deletes exactly
	// those keys. Never a range deletion: every range tombstone in Pebble's
	// memtable made each later iterator fragment them all again, which was
	// a sixth of a backlog's drain (hot products changed over and over in
	// one large period were rewritten behind a range deletion).
	changed    []string
	size       int64
	prev, next *entry // in the LRU list while evictable
}

// Changes are one period's changes, for Store.Apply.
type Changes struct {
	period         uint64
	entries        []*entry
	rows, products int64
}

// Products is the number of products the changes touch.
func (c *Changes) Products() int { return len(c.entries) }

// NewView starts a view over the store, whose counts (from its meta or the
// load that filled it) are rows and products. budget bounds, in bytes, the
// products it keeps decoded (besides changes not yet applied: see Dirty).
func (s *Store) NewView(budget, rows, products int64) *View {
	v := &View{s: s, budget: budget, entries: make(map[string]*entry), period: s.applied.Load() + 1,
		rows: rows, products: products, intern: make(map[string]string)}
	v.lru.next, v.lru.prev = &v.lru, &v.lru
	return v
}

// Rows and Products count the state as the view shows it.
func (v *View) Rows() int64     { return v.rows }
func (v *View) Products() int64 { return v.products }

// Dirty is the estimated memory of the changes of the current period: the
// caller hands them over (and waits for the store to take them) before
// they outgrow its budget, since they cannot be evicted until applied.
func (v *View) Dirty() int64 { return v.dirtyB }

// Budget is the view's budget in bytes.
func (v *View) Budget() int64 { return v.budget }

// internLimit bounds the strings shared across rows (warehouse ids and
// change kinds, a few hundred in practice): past it new ones are not shared.
const internLimit = 1 << 16

func (v *View) internBytes(b []byte) string {
	if s, ok := v.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(v.intern) < internLimit {
		v.intern[s] = s
	}
	return s
}

func (v *View) internString(s string) string {
	if shared, ok := v.intern[s]; ok {
		return shared
	}
	if len(v.intern) < internLimit {
		v.intern[s] = s
	}
	return s
}

// rowBytes is the size of one decoded row; each also holds one string
// that is not shared (the change reference), allocated in 8-byte steps.
const rowBytes = int64(unsafe.Sizeof(change.Row{}))

const entryBytes = int64(unsafe.Sizeof(entry{})) + 48 // and its map slot

// measure estimates the entry's memory, the slack of its slices included
// (an estimate that counted only the rows in use held two thirds of what
// the heap profile showed).
func (e *entry) measure() int64 {
	n := entryBytes + int64(len(e.id)) + int64(16*cap(e.changed)) + rowBytes*int64(cap(e.rows))
	for i := range e.rows {
		n += int64(len(e.rows[i].LastChangeRef)+7) &^ 7
	}
	return n
}

func (v *View) lruRemove(e *entry) {
	if e.prev != nil {
		e.prev.next, e.next.prev = e.next, e.prev
		e.prev, e.next = nil, nil
	}
}

func (v *View) lruFront(e *entry) {
	v.lruRemove(e)
	e.prev, e.next = &v.lru, v.lru.next
	v.lru.next.prev = e
	v.lru.next = e
}

// settle puts the entries of periods the store has taken back in the LRU
// list, where they may be evicted.
func (v *View) settle() {
	applied := v.s.applied.Load()
	for len(v.inFlight) > 0 && v.inFlight[0].period <= applied {
		c := v.inFlight[0]
		v.inFlight[0] = nil
		v.inFlight = v.inFlight[1:]
		for _, e := range c.entries {
			if v.entries[e.id] == e && e.period == c.period {
				v.lruFront(e)
			}
		}
	}
}

// evict drops the least recently used evictable entries until the view
// has room for more bytes within its budget.
func (v *View) evict(more int64) {
	v.settle()
	for v.bytes+more > v.budget && v.lru.prev != &v.lru {
		e := v.lru.prev
		v.lruRemove(e)
		delete(v.entries, e.id)
		v.bytes -= e.size
	}
}

// get returns the product's entry, reading it from the store if needed.
func (v *View) get(product string) (*entry, error) {
	if e, ok := v.entries[product]; ok {
		if e.prev != nil {
			v.lruFront(e)
		}
		return e, nil
	}
	rows, err := v.s.readProduct(product, rowDecoder{intern: v.internBytes})
	if err != nil {
		return nil, err
	}
	e := &entry{id: product, rows: rows}
	for i := range e.rows {
		e.rows[i].ProductID = e.id // one copy of the id for all rows
	}
	e.size = e.measure()
	// Room first: the entry returned must stay in the map.
	v.evict(e.size)
	v.entries[product] = e
	v.bytes += e.size
	v.lruFront(e)
	return e, nil
}

// writable returns the product's entry ready to change in the current
// period: an entry handed over and not yet applied is copied first, since
// the committer may be encoding it.
func (v *View) writable(product string) (*entry, error) {
	e, err := v.get(product)
	if err != nil {
		return nil, err
	}
	if e.period == v.period {
		return e, nil
	}
	if e.period > v.s.applied.Load() {
		e = &entry{id: e.id, rows: append([]change.Row(nil), e.rows...), size: e.size}
		v.entries[product] = e
	} else {
		v.lruRemove(e) // pinned until its period is applied
		e.changed = nil
	}
	e.period = v.period
	v.dirty = append(v.dirty, e)
	v.dirtyB += e.size
	return e, nil
}

// resize records a change in an entry's estimated size.
func (v *View) resize(e *entry) {
	n := e.measure()
	v.bytes += n - e.size
	v.dirtyB += n - e.size
	e.size = n
}

// markChanged adds warehouse to changed unless it is there: the list is
// bounded by the product's warehouses however often they change in one
// period, and the linear search over it (interned strings, at most one
// per warehouse) is cheap beside the row's decoding and encoding.
func (e *entry) markChanged(warehouse string) {
	if slices.Contains(e.changed, warehouse) {
		return
	}
	e.changed = append(e.changed, warehouse)
}

func find(rows []change.Row, warehouse string) (int, bool) {
	i := sort.Search(len(rows), func(i int) bool { return rows[i].WarehouseID >= warehouse })
	return i, i < len(rows) && rows[i].WarehouseID == warehouse
}

// ProductRows returns a product's rows, sorted by warehouse id; the slice
// is valid until the next change through the view and must not be modified.
func (v *View) ProductRows(product string) ([]change.Row, error) {
	e, err := v.get(product)
	if err != nil {
		return nil, err
	}
	return e.rows, nil
}

// Put inserts or replaces a row and returns the row it replaced, if any.
func (v *View) Put(r change.Row) (before *change.Row, err error) {
	e, err := v.writable(r.ProductID)
	if err != nil {
		return nil, err
	}
	r.ProductID = e.id
	r.WarehouseID = v.internString(r.WarehouseID)
	r.LastChangeKind = v.internString(r.LastChangeKind)
	i, ok := find(e.rows, r.WarehouseID)
	if ok {
		old := e.rows[i]
		before = &old
		e.rows[i] = r
	} else {
		if len(e.rows) == 0 {
			v.products++
		}
		e.rows = append(e.rows, change.Row{})
		copy(e.rows[i+1:], e.rows[i:])
		e.rows[i] = r
		v.rows++
	}
	e.markChanged(r.WarehouseID)
	v.resize(e)
	return before, nil
}

// Delete removes a row and returns it, if it was there.
func (v *View) Delete(k change.Key) (before *change.Row, err error) {
	e, err := v.get(k.ProductID)
	if err != nil {
		return nil, err
	}
	if _, ok := find(e.rows, k.WarehouseID); !ok {
		return nil, nil
	}
	if e, err = v.writable(k.ProductID); err != nil {
		return nil, err
	}
	i, _ := find(e.rows, k.WarehouseID)
	old := e.rows[i]
	e.rows = append(e.rows[:i], e.rows[i+1:]...)
	v.rows--
	if len(e.rows) == 0 {
		v.products--
	}
	e.markChanged(old.WarehouseID)
	v.resize(e)
	return &old, nil
}

// Clear removes every row of a product.
func (v *View) Clear(product string) error {
	e, err := v.get(product)
	if err != nil || len(e.rows) == 0 {
		return err
	}
	if e, err = v.writable(product); err != nil {
		return err
	}
	v.rows -= int64(len(e.rows))
	v.products--
	for i := range e.rows {
		e.markChanged(e.rows[i].WarehouseID)
	}
	e.rows = nil
	v.resize(e)
	return nil
}

// Each calls fn for every product with rows, the changes not yet applied
// included; fn may change the view. A product fn removes before its turn
// may still be passed: fn must expect a product without rows.
func (v *View) Each(fn func(product string) error) error {
	// The store's list misses products created in memory and still lists
	// ones removed in memory: the entries in memory answer for themselves.
	inMemory := make(map[string]struct{}, len(v.entries))
	for id := range v.entries {
		inMemory[id] = struct{}{}
	}
	err := v.s.EachProduct(func(product string, _ uint64, _ int64) error {
		if _, ok := inMemory[product]; ok {
			return nil
		}
		return fn(product)
	})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(inMemory))
	for id := range inMemory {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// Pending returns the current period's changes (nil if none) without
// ending the period: if the caller cannot hand them over yet, the period
// goes on and a later Pending includes them.
func (v *View) Pending() *Changes {
	if len(v.dirty) == 0 {
		return nil
	}
	return &Changes{period: v.period, entries: v.dirty, rows: v.rows, products: v.products}
}

// Advance ends the period whose changes Pending returned (and the caller
// handed over): its entries stay pinned until the store applied them.
func (v *View) Advance(c *Changes) {
	if c == nil {
		return
	}
	v.inFlight = append(v.inFlight, c)
	v.dirty = nil
	v.dirtyB = 0
	v.period++
	v.evict(0)
}
