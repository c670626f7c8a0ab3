package api

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/stockpipe/stock/internal/stockstore"
)

// coalescer merges the one-product reads of concurrent requests into
// pipelined reads: while a read is on its way to Redis, the reads that
// arrive queue, and all of them leave together as one pipeline when it is
// back. A read that finds nothing under way leaves at once, so a quiet API
// waits for nothing; a busy one sends one round trip for many requests,
// which saves Redis and the API a write and a read system call per request
// (they were most of a single GET's cost).
type coalescer struct {
	store   Store
	timeout time.Duration // of one flight

	mu       sync.Mutex
	inFlight bool
	queued   []*docRead
}

// maxFlight bounds the reads of one pipeline, so that a burst is not one
// huge round trip that everyone waits for.
const maxFlight = 256

type docRead struct {
	id   string
	doc  json.RawMessage
	err  error
	done chan struct{}
}

// get returns the stored document of a product, or stockstore.ErrNotFound.
func (c *coalescer) get(ctx context.Context, id string) (json.RawMessage, error) {
	c.mu.Lock()
	if c.inFlight {
		r := &docRead{id: id, done: make(chan struct{})}
		c.queued = append(c.queued, r)
		c.mu.Unlock()
		select {
		case <-r.done:
			return r.doc, r.err
		case <-ctx.Done():
			// The flight goes on without this request; its answer is
			// dropped.
			return nil, ctx.Err()
		}
	}
	c.inFlight = true
	c.mu.Unlock()
	doc, err := c.store.GetJSON(ctx, id)
	// The reads queued meanwhile leave on a goroutine of their own rather
	// than delay this request's answer; it ends when the queue is empty.
	if next := c.next(); next != nil {
		go c.flyAll(next)
	}
	return doc, err
}

// flyAll runs flights until no read is queued. A flight serves several
// requests, so it has a deadline of its own: one client going away must not
// fail the others.
func (c *coalescer) flyAll(batch []*docRead) {
	for ; batch != nil; batch = c.next() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		c.fly(ctx, batch)
		cancel()
	}
}

// next takes the queued reads as the next flight, or ends the flying (nil)
// when none is queued.
func (c *coalescer) next() []*docRead {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queued) == 0 {
		c.inFlight = false
		return nil
	}
	n := min(len(c.queued), maxFlight)
	batch := c.queued[:n:n]
	c.queued = c.queued[n:]
	if len(c.queued) == 0 {
		c.queued = nil // the next append starts a new array
	}
	return batch
}

// fly reads the documents of batch in one pipeline and hands each read its
// answer.
func (c *coalescer) fly(ctx context.Context, batch []*docRead) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	ids := make([]string, 0, len(batch))
	var seen map[string]struct{}
	if len(batch) > 1 {
		seen = make(map[string]struct{}, len(batch))
	}
	for _, r := range batch {
		if seen != nil {
			if _, dup := seen[r.id]; dup {
				continue // one read per product
			}
			seen[r.id] = struct{}{}
		}
		ids = append(ids, r.id)
	}
	if len(ids) == 1 {
		// Alone (a quiet API, or one product asked for by all): a plain
		// read, no pipeline.
		doc, err := c.store.GetJSON(ctx, ids[0])
		for _, r := range batch {
			r.doc, r.err = doc, err
		}
		return
	}
	docs, err := c.store.GetManyJSON(ctx, ids)
	if err != nil {
		for _, r := range batch {
			r.err = err
		}
		return
	}
	byID := make(map[string]json.RawMessage, len(ids)) // ids are distinct
	for i, id := range ids {
		byID[id] = docs[i]
	}
	for _, r := range batch {
		if r.doc = byID[r.id]; r.doc == nil {
			r.err = stockstore.ErrNotFound
		}
	}
}
