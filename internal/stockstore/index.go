package stockstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/position"
)

// Warehouse row statuses that put a product in the warehouse's low-stock set.
const (
	StatusLowStock   = "LOW_STOCK"
	StatusOutOfStock = "OUT_OF_STOCK"
)

// ErrCursorExpired is returned by Changes for a cursor the change index no
// longer covers: older than the retained window, or from a generation that a
// rebuild has replaced. The client must resynchronise in full, then follow
// the cursor ChangesHead returned before it started.
var ErrCursorExpired = errors.New("change cursor expired")

// ErrBadCursor is returned for a cursor that Changes never handed out.
var ErrBadCursor = errors.New("invalid change cursor")

// appendLow appends the ids of the warehouses whose row is low or out of
// stock, joined by "\n" (the apply script's list format).
func appendLow(b []byte, s *Snapshot) []byte {
	for i := range s.Warehouses {
		w := &s.Warehouses[i]
		if w.Status != StatusLowStock && w.Status != StatusOutOfStock {
			continue
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, w.WarehouseID...)
	}
	return b
}

// LowStock returns, ordered by product id, up to limit products whose row in
// warehouseID is LOW_STOCK or OUT_OF_STOCK, starting after the product id
// after ("" for the first page). next is the cursor of the following page,
// "" when this one is the last. One round trip.
func (s *Store) LowStock(ctx context.Context, warehouseID, after string, limit int) (productIDs []string, next string, err error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("reading low stock of %q: limit must be positive, got %d", warehouseID, limit)
	}
	k, err := s.readKeys(ctx)
	if err != nil {
		return nil, "", err
	}
	from := "-"
	if after != "" {
		from = "(" + after
	}
	// One more than asked tells whether another page follows. On a Cluster
	// every bucket's set is read (one pipelined round trip per node) and
	// the pages merged: each holds the bucket's first limit+1 ids after the
	// cursor, so the merged first limit+1 are the warehouse's.
	by := &redis.ZRangeBy{Min: from, Max: "+", Count: int64(limit) + 1}
	var ids []string
	if s.buckets == 0 {
		ids, err = s.rdb.ZRangeByLex(ctx, k.lowStock(warehouseID, 0), by).Result()
	} else {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, s.buckets)
		for b := range cmds {
			cmds[b] = pipe.ZRangeByLex(ctx, k.lowStock(warehouseID, b), by)
		}
		if _, err = pipe.Exec(ctx); err == nil {
			for _, c := range cmds {
				ids = append(ids, c.Val()...)
			}
			slices.Sort(ids) // ZRANGEBYLEX order: bytewise, as Go sorts strings
			ids = ids[:min(len(ids), limit+1)]
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading low stock of %q: %w", warehouseID, err)
	}
	if len(ids) > limit {
		return ids[:limit], ids[limit-1], nil
	}
	return ids, "", nil
}

// Change is the latest change of one product in the change index.
type Change struct {
	ProductID string
	Position  position.Position
	Deleted   bool
}

// Changes returns up to limit products changed after the cursor after, in
// the order the projector applied them (position order within a Kafka
// partition; across partitions, apply order, so that a change applied late
// with an older position is never skipped by a cursor already past it; on
// a Cluster, apply order within each bucket, buckets taken in turn). Each
// product appears once, at its latest change, deletions included. after ""
// starts at the oldest retained entry. next is the cursor to pass next
// time; it equals after when nothing changed (with after "", the head).
// Cursors are opaque strings ("<generation>:<sequence>", on a Cluster one
// sequence per bucket joined by "."). ErrCursorExpired when the window no
// longer covers after.
func (s *Store) Changes(ctx context.Context, after string, limit int) (changes []Change, next string, err error) {
	if limit < 0 {
		return nil, "", fmt.Errorf("reading changes: limit must not be negative, got %d", limit)
	}
	cg, seqs, err := s.parseCursor(after)
	if err != nil {
		return nil, "", err
	}
	gen, heads, entries, err := s.readChanges(ctx, cg, seqs, limit)
	if err != nil {
		return nil, "", err
	}
	// Take the buckets' entries in turn: whatever is taken of a bucket is
	// a prefix of its entries, so its sequence in the cursor skips nothing.
	nb := s.nBuckets()
	took := make([]int, nb)
	last := make([]string, nb)
	for len(changes) < limit {
		progressed := false
		for b := 0; b < nb && len(changes) < limit; b++ {
			if took[b] == len(entries[b]) {
				continue
			}
			e := entries[b][took[b]]
			took[b]++
			last[b] = e.seq
			changes = append(changes, e.Change)
			progressed = true
		}
		if !progressed {
			break
		}
	}
	if len(changes) == 0 && after != "" {
		return changes, after, nil
	}
	cur := make([]string, nb)
	for b := range cur {
		switch {
		case last[b] != "":
			cur[b] = last[b]
		case after != "":
			cur[b] = seqs[b]
		case len(entries[b]) > 0:
			// Nothing taken of a bucket that has entries: start before its
			// first, which the floor is below.
			q, _ := strconv.ParseUint(entries[b][0].seq, 10, 63)
			cur[b] = strconv.FormatUint(q-1, 10)
		default:
			cur[b] = heads[b]
		}
	}
	return changes, gen + ":" + strings.Join(cur, "."), nil
}

// ChangesHead returns the cursor of the newest entry of the change index: a
// client that takes it before a full read of the cache and then follows
// Changes from it misses nothing.
func (s *Store) ChangesHead(ctx context.Context) (string, error) {
	gen, heads, _, err := s.readChanges(ctx, "", make([]string, s.nBuckets()), 0)
	if err != nil {
		return "", fmt.Errorf("reading change head: %w", err)
	}
	return gen + ":" + strings.Join(heads, "."), nil
}

// parseCursor splits a cursor into its generation and one sequence per
// bucket ("", and "0"s, for none).
func (s *Store) parseCursor(after string) (gen string, seqs []string, err error) {
	seqs = make([]string, s.nBuckets())
	if after == "" {
		for b := range seqs {
			seqs[b] = "0"
		}
		return "", seqs, nil
	}
	g, q, ok := strings.Cut(after, ":")
	parts := strings.Split(q, ".")
	_, gerr := strconv.ParseUint(g, 10, 63)
	if !ok || gerr != nil || len(parts) != len(seqs) {
		return "", nil, fmt.Errorf("%w: %q", ErrBadCursor, after)
	}
	for b, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 63); err != nil {
			return "", nil, fmt.Errorf("%w: %q", ErrBadCursor, after)
		}
		seqs[b] = p
	}
	return g, seqs, nil
}

type changeEntry struct {
	Change
	seq string
}

// readChanges runs the changes script on every bucket in one pipelined
// round trip: the active generation, each bucket's head sequence and up to
// limit entries of each after its sequence in seqs.
func (s *Store) readChanges(ctx context.Context, cg string, seqs []string, limit int) (gen string, heads []string, entries [][]changeEntry, err error) {
	nb := s.nBuckets()
	calls := make([]scriptCall, nb)
	for b := range calls {
		calls[b] = scriptCall{script: changesScript, keys: []string{s.pointer(b)},
			args: []any{s.base, s.bucketTag(b), cg, seqs[b], limit}}
	}
	if err := s.run(ctx, calls); err != nil {
		return "", nil, nil, fmt.Errorf("reading changes: %w", err)
	}
	heads = make([]string, nb)
	entries = make([][]changeEntry, nb)
	expired := false
	for b, c := range calls {
		vals, err := c.cmd.Slice()
		if err == nil && (len(vals) < 3 || (len(vals)-3)%4 != 0) {
			err = fmt.Errorf("unexpected answer of %d values", len(vals))
		}
		if err != nil {
			return "", nil, nil, fmt.Errorf("reading changes: %w", err)
		}
		g := fmt.Sprint(vals[0])
		if b == 0 {
			gen = g
		} else if g != gen {
			// A rebuild is switching the buckets over, which takes a few
			// milliseconds; the caller may retry.
			return "", nil, nil, errors.New("reading changes: a generation switch is under way")
		}
		expired = expired || fmt.Sprint(vals[1]) == "expired"
		heads[b] = fmt.Sprint(vals[2])
		for i := 3; i < len(vals); i += 4 {
			id, pk := fmt.Sprint(vals[i]), fmt.Sprint(vals[i+2])
			var p position.Position
			if pk != "" {
				if p, err = position.ParseKey(pk); err != nil {
					return "", nil, nil, fmt.Errorf("reading change of %q: %w", id, err)
				}
			}
			entries[b] = append(entries[b], changeEntry{
				Change: Change{ProductID: id, Position: p, Deleted: fmt.Sprint(vals[i+3]) == "1"},
				seq:    fmt.Sprint(vals[i+1]),
			})
		}
	}
	if expired {
		return "", nil, nil, fmt.Errorf("%w: generation %s:%s", ErrCursorExpired, cg, strings.Join(seqs, "."))
	}
	return gen, heads, entries, nil
}

// TrimChanges keeps the newest keep entries of the change index of the
// store's generation (on a Cluster, keep/ClusterBuckets, rounded up, per
// bucket) and returns how many it removed; cursors older than the kept
// window then get ErrCursorExpired. The projector calls it periodically.
func (s *Store) TrimChanges(ctx context.Context, keep int) (int, error) {
	nb := s.nBuckets()
	calls := make([]scriptCall, nb)
	for b := range calls {
		calls[b] = scriptCall{script: trimScript, keys: []string{s.pointer(b)},
			args: []any{s.base, s.writeGen(), s.bucketTag(b), (keep + nb - 1) / nb}}
	}
	if err := s.run(ctx, calls); err != nil {
		return 0, fmt.Errorf("trimming change index: %w", err)
	}
	n := 0
	for _, c := range calls {
		v, err := c.cmd.Int64()
		if err != nil {
			return n, fmt.Errorf("trimming change index: %w", err)
		}
		n += int(v)
	}
	return n, nil
}
