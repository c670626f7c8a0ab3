package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/schemas"
	"github.com/stockpipe/stock/scripts/bench/match"
	"github.com/stockpipe/stock/scripts/warehouse/simulate"
)

// maxPollers bounds the samples polled at once: past it a sample is
// dropped rather than the pollers themselves loading the machine under test.
const maxPollers = 64

// sampleTimeout is how long a sample is followed before it counts as not
// visible.
const sampleTimeout = 15 * time.Second

// sampler follows sampled writes: it hears of writes from the simulator, of
// change records from the watch on stock.changes.v1, and polls Redis (through
// the stockstore layout) and the query API until each sample is visible.
type sampler struct {
	store  *stockstore.Store
	http   *http.Client
	apiURL string // http://host:port/v1/stock/
	poll   time.Duration

	ctx     context.Context // of the whole run; pollers stop with it
	tracker atomic.Pointer[match.Tracker]
	sem     chan struct{}
	wg      sync.WaitGroup
	dropped atomic.Int64

	mu      sync.Mutex
	samples []*match.Sample
}

func newSampler(ctx context.Context, store *stockstore.Store, apiAddr string, poll time.Duration) *sampler {
	return &sampler{
		store: store, apiURL: "http://" + apiAddr + "/v1/stock/", poll: poll, ctx: ctx,
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			MaxIdleConns: maxPollers, MaxIdleConnsPerHost: maxPollers, IdleConnTimeout: time.Minute}},
		sem: make(chan struct{}, maxPollers),
	}
}

// begin starts sampling one write in every.
func (s *sampler) begin(every int) {
	s.mu.Lock()
	s.samples = nil
	s.mu.Unlock()
	s.dropped.Store(0)
	s.tracker.Store(match.NewTracker(every))
}

// stop stops sampling new writes and waits for the pollers in flight.
func (s *sampler) stop() []*match.Sample {
	s.tracker.Store(nil)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// active reports whether pollers are still running.
func (s *sampler) active() bool { return len(s.sem) > 0 }

// onWrite is the simulator's OnWrite: it runs on a simulator worker and
// must not block.
func (s *sampler) onWrite(w simulate.Write) {
	tr := s.tracker.Load()
	if tr == nil {
		return
	}
	sm, ok := tr.Offer(match.Key{Kind: w.Kind, Ref: w.Ref}, w.ProductID, w.At)
	if !ok {
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		tr.Done(sm)
		s.dropped.Add(1)
		return
	}
	s.mu.Lock()
	s.samples = append(s.samples, sm)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		defer tr.Done(sm)
		s.follow(sm)
	}()
}

// onRecord is the watch's OnRecord: it decodes only records of products
// with a sample pending.
func (s *sampler) onRecord(r *kgo.Record, readAt time.Time) {
	tr := s.tracker.Load()
	if tr == nil || len(r.Value) == 0 || !tr.Wants(string(r.Key)) {
		return
	}
	c, err := schemas.DecodeChange(r.Value)
	if err != nil {
		return
	}
	tr.Change(match.Key{Kind: c.ChangeKind, Ref: c.ChangeRef}, c.Position.Value().LSN, c.CommitTime, readAt)
}

// follow polls Redis until the sample's snapshot is there, then the query
// API (which reads that Redis: it cannot show the snapshot earlier), so
// each sample costs one stream of reads at a time. Polls are dense while a
// change is young and sparser as it ages, so an overloaded pipeline is not
// polled harder.
func (s *sampler) follow(sm *match.Sample) {
	deadline := sm.WrittenAt.Add(sampleTimeout)
	for {
		now := time.Now()
		if now.After(deadline) || s.ctx.Err() != nil {
			return
		}
		if !sm.Visible(match.Redis) {
			if lsn, ok := s.redisLSN(sm.ProductID); ok {
				sm.Observe(match.Redis, match.Observation{At: time.Now(), LSN: lsn})
			}
		}
		if sm.Visible(match.Redis) {
			if lsn, ok := s.apiLSN(sm.ProductID); ok {
				sm.Observe(match.API, match.Observation{At: time.Now(), LSN: lsn})
			}
			if sm.Visible(match.API) {
				return
			}
			// The API answers from that Redis: it should show the snapshot
			// on this read; poll again soon if it did not.
			time.Sleep(s.poll)
			continue
		}
		wait := s.poll
		switch age := now.Sub(sm.WrittenAt); {
		case age > time.Second:
			wait = 40 * s.poll
		case age > 50*time.Millisecond:
			wait = 5 * s.poll
		}
		time.Sleep(wait)
	}
}

func (s *sampler) redisLSN(id string) (uint64, bool) {
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	defer cancel()
	p, _, ok, err := s.store.StoredPosition(ctx, id)
	return p.LSN, ok && err == nil
}

func (s *sampler) apiLSN(id string) (uint64, bool) {
	lsn, err := apiPosition(s.ctx, s.http, s.apiURL+id)
	return lsn, err == nil
}

// apiPosition reads a product through the query API and returns the commit
// LSN of the snapshot it served.
func apiPosition(ctx context.Context, c *http.Client, url string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var doc struct {
		Position string `json:"position"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return 0, fmt.Errorf("decoding %s: %w", url, err)
	}
	if doc.Position == "" {
		return 0, errors.New("no position in answer")
	}
	p, err := position.Parse(doc.Position)
	if err != nil {
		return 0, err
	}
	return p.LSN, nil
}
