package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/stockpipe/stock/internal/stockstore"
)

// gateStore holds its first read until released, so that the test can
// queue reads behind it, and records the pipelines it is asked for.
type gateStore struct {
	Store // only the reads below are called

	docs    map[string]json.RawMessage
	fail    error
	started chan struct{} // closed by the first read
	release chan struct{}

	mu    sync.Mutex
	first bool
	batch [][]string // the ids of each GetManyJSON
}

func newGateStore(docs map[string]json.RawMessage) *gateStore {
	return &gateStore{docs: docs, started: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateStore) GetJSON(ctx context.Context, id string) (json.RawMessage, error) {
	g.mu.Lock()
	first := !g.first
	g.first = true
	g.mu.Unlock()
	if first {
		close(g.started)
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d, ok := g.docs[id]; ok {
		return d, nil
	}
	return nil, stockstore.ErrNotFound
}

func (g *gateStore) GetManyJSON(_ context.Context, ids []string) ([]json.RawMessage, error) {
	g.mu.Lock()
	g.batch = append(g.batch, slices.Clone(ids))
	g.mu.Unlock()
	if g.fail != nil {
		return nil, g.fail
	}
	docs := make([]json.RawMessage, len(ids))
	for i, id := range ids {
		docs[i] = g.docs[id]
	}
	return docs, nil
}

func (g *gateStore) batches() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.batch)
}

// queued are reads started behind one the store holds.
type queued struct {
	docs []json.RawMessage
	errs []error
	// done[i] is closed when read i has returned.
	done []chan struct{}
	wg   sync.WaitGroup
}

// queueBehind starts a read of "P-0" that the store holds (read 0), then
// the reads of ids (reads 1 on), and returns once all of them are queued
// behind it.
func queueBehind(t *testing.T, c *coalescer, g *gateStore, ctxs []context.Context, ids []string) *queued {
	t.Helper()
	n := len(ids) + 1
	q := &queued{docs: make([]json.RawMessage, n), errs: make([]error, n), done: make([]chan struct{}, n)}
	read := func(i int, ctx context.Context, id string) {
		q.done[i] = make(chan struct{})
		q.wg.Go(func() {
			defer close(q.done[i])
			q.docs[i], q.errs[i] = c.get(ctx, id)
		})
	}
	read(0, context.Background(), "P-0")
	<-g.started
	for i, id := range ids {
		read(i+1, ctxs[i], id)
	}
	for {
		c.mu.Lock()
		queued := len(c.queued)
		c.mu.Unlock()
		if queued == len(ids) {
			return q
		}
		runtime.Gosched()
	}
}

func products(n int) map[string]json.RawMessage {
	docs := map[string]json.RawMessage{}
	for i := range n {
		id := fmt.Sprintf("P-%d", i)
		docs[id] = json.RawMessage(`{"product_id":"` + id + `"}`)
	}
	return docs
}

func backgrounds(n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = context.Background()
	}
	return ctxs
}

// Reads that arrive while one is under way leave together, one pipeline
// per maxFlight distinct products, and each gets its own product's
// document, or not found.
func TestCoalescerAnswersEachReadItsOwn(t *testing.T) {
	g := newGateStore(products(400))
	c := &coalescer{store: g, timeout: DefaultStoreTimeout}
	var ids []string
	for i := range 300 {
		ids = append(ids, fmt.Sprintf("P-%d", 1+i%290)) // some asked twice
	}
	ids = append(ids, "P-none", "P-7", "P-none")
	q := queueBehind(t, c, g, backgrounds(len(ids)), ids)
	close(g.release)
	q.wg.Wait()

	for i, id := range append([]string{"P-0"}, ids...) {
		want, ok := g.docs[id]
		switch {
		case !ok && !errors.Is(q.errs[i], stockstore.ErrNotFound):
			t.Errorf("read of %s: %q, %v; want not found", id, q.docs[i], q.errs[i])
		case ok && (q.errs[i] != nil || string(q.docs[i]) != string(want)):
			t.Errorf("read of %s: %q, %v; want %s", id, q.docs[i], q.errs[i], want)
		}
	}
	// 303 queued reads: 256, then 47, each pipeline asking each product
	// once.
	b := g.batches()
	if len(b) != 2 {
		t.Fatalf("%d pipelines for 303 queued reads, want 2: %v", len(b), b)
	}
	for _, ids := range b {
		if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
			t.Errorf("a pipeline asks a product twice: %v", ids)
		}
	}
}

// A failed pipeline fails every read in it, and the reads after it are
// not stuck.
func TestCoalescerSharesAFailure(t *testing.T) {
	g := newGateStore(products(10))
	g.fail = errors.New("connection refused")
	c := &coalescer{store: g, timeout: DefaultStoreTimeout}
	ids := []string{"P-1", "P-2", "P-3"}
	q := queueBehind(t, c, g, backgrounds(len(ids)), ids)
	close(g.release)
	q.wg.Wait()
	for i, err := range q.errs[1:] {
		if !errors.Is(err, g.fail) {
			t.Errorf("read of %s: %v, want the pipeline's error", ids[i], err)
		}
	}
	if _, err := c.get(context.Background(), "P-4"); err != nil {
		t.Errorf("a read after the failure: %v", err)
	}
}

// A request that gives up while queued (its client went away, its
// deadline passed) returns at once; the others still get their answers.
func TestCoalescerLetsAQueuedReadGiveUp(t *testing.T) {
	g := newGateStore(products(10))
	c := &coalescer{store: g, timeout: DefaultStoreTimeout}
	gone, cancel := context.WithCancel(context.Background())
	ctxs := []context.Context{context.Background(), gone, context.Background()}
	ids := []string{"P-1", "P-2", "P-3"}
	q := queueBehind(t, c, g, ctxs, ids)
	cancel()
	<-q.done[2] // while the store still holds the first read
	close(g.release)
	q.wg.Wait()
	if !errors.Is(q.errs[2], context.Canceled) {
		t.Errorf("the read that gave up: %v", q.errs[2])
	}
	for _, i := range []int{1, 3} {
		if q.errs[i] != nil || string(q.docs[i]) != string(g.docs[ids[i-1]]) {
			t.Errorf("read of %s: %q, %v", ids[i-1], q.docs[i], q.errs[i])
		}
	}
}
