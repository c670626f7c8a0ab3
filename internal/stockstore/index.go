package stockstore

import (
	"context"
	"errors"
	"fmt"
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
	// One more than asked tells whether another page follows.
	ids, err := s.rdb.ZRangeByLex(ctx, k.lowStock(warehouseID), &redis.ZRangeBy{
		Min: from, Max: "+", Count: int64(limit) + 1,
	}).Result()
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
// with an older position is never skipped by a cursor already past it).
// Each product appears once, at its latest change, deletions included. after
// "" starts at the oldest retained entry. next is the cursor to pass next
// time; it equals after when nothing changed (with after "", the head). Cursors are opaque strings
// ("<generation>:<sequence>"). ErrCursorExpired when the window no longer
// covers after.
func (s *Store) Changes(ctx context.Context, after string, limit int) (changes []Change, next string, err error) {
	if limit < 0 {
		return nil, "", fmt.Errorf("reading changes: limit must not be negative, got %d", limit)
	}
	cg, cs := "", "0"
	if after != "" {
		g, q, ok := strings.Cut(after, ":")
		_, err1 := strconv.ParseUint(g, 10, 63)
		_, err2 := strconv.ParseUint(q, 10, 63)
		if !ok || err1 != nil || err2 != nil {
			return nil, "", fmt.Errorf("%w: %q", ErrBadCursor, after)
		}
		cg, cs = g, q
	}
	res, err := s.runScript(ctx, changesScript, s.base, cg, cs, limit)
	if err != nil {
		return nil, "", fmt.Errorf("reading changes: %w", err)
	}
	vals, _ := res.([]any)
	if len(vals) < 3 || (len(vals)-3)%4 != 0 {
		return nil, "", fmt.Errorf("reading changes: unexpected answer of %d values", len(vals))
	}
	gen := fmt.Sprint(vals[0])
	if fmt.Sprint(vals[1]) == "expired" {
		return nil, "", fmt.Errorf("%w: %q", ErrCursorExpired, after)
	}
	next = after
	changes = make([]Change, 0, (len(vals)-3)/4)
	for i := 3; i < len(vals); i += 4 {
		id, seq, pk := fmt.Sprint(vals[i]), fmt.Sprint(vals[i+1]), fmt.Sprint(vals[i+2])
		var p position.Position
		if pk != "" {
			if p, err = position.ParseKey(pk); err != nil {
				return nil, "", fmt.Errorf("reading change of %q: %w", id, err)
			}
		}
		changes = append(changes, Change{ProductID: id, Position: p, Deleted: fmt.Sprint(vals[i+3]) == "1"})
		next = gen + ":" + seq
	}
	if next == "" {
		next = gen + ":" + fmt.Sprint(vals[2]) // nothing yet: start from the head
	}
	return changes, next, nil
}

// ChangesHead returns the cursor of the newest entry of the change index: a
// client that takes it before a full read of the cache and then follows
// Changes from it misses nothing.
func (s *Store) ChangesHead(ctx context.Context) (string, error) {
	res, err := s.runScript(ctx, changesScript, s.base, "", "0", 0)
	if err != nil {
		return "", fmt.Errorf("reading change head: %w", err)
	}
	vals, _ := res.([]any)
	if len(vals) < 3 {
		return "", fmt.Errorf("reading change head: unexpected answer %v", res)
	}
	return fmt.Sprint(vals[0]) + ":" + fmt.Sprint(vals[2]), nil
}

// TrimChanges keeps the newest keep entries of the change index of the
// store's generation and returns how many it removed; cursors older than the
// kept window then get ErrCursorExpired. The projector calls it periodically.
func (s *Store) TrimChanges(ctx context.Context, keep int) (int, error) {
	res, err := s.runScript(ctx, trimScript, s.base, s.writeGen(), keep)
	if err != nil {
		return 0, fmt.Errorf("trimming change index: %w", err)
	}
	n, _ := res.(int64)
	return int(n), nil
}
