// Package match follows sampled writes through the pipeline: it picks one
// write in N, joins it with the change record the producer wrote for it (by
// change kind and ref, which every write function stamps on the rows it
// changes), and turns what pollers saw in Redis and through the query API
// into commit-to-visible latencies. It does no I/O: the consumer and the
// pollers that feed it live elsewhere.
package match

import (
	"sync"
	"time"
)

// Key names one write: its last_change_kind and last_change_ref. The ref
// alone is not unique: a release without a ref of its own is stamped with
// the reservation id, as the reserve was.
type Key struct{ Kind, Ref string }

// Observation is what a poller read at one moment: the source commit LSN of
// the product's snapshot held by a store (Redis, the query API).
type Observation struct {
	At  time.Time
	LSN uint64
}

// Store names where a sample was observed.
type Store int

// The stores a sample is polled in.
const (
	Redis Store = iota
	API
	numStores
)

// Sample is one sampled write on its way through the pipeline.
type Sample struct {
	Key       Key
	ProductID string
	WrittenAt time.Time // when the writer saw its transaction commit

	mu sync.Mutex
	// From the change record(s): a transfer writes two, at one commit LSN.
	matched    bool
	lsn        uint64
	commitTime time.Time
	kafkaAt    time.Time
	seen       [numStores][]Observation // kept only when the LSN changes
}

// Change joins the sample with one of its change records, read from Kafka
// at seenAt.
func (s *Sample) Change(lsn uint64, commitTime, seenAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.matched || seenAt.Before(s.kafkaAt) {
		s.kafkaAt = seenAt
	}
	s.matched, s.lsn, s.commitTime = true, max(s.lsn, lsn), commitTime
}

// Observe records what a store held at a moment. Only changes of the LSN
// are kept, so a poller may call it as often as it likes.
func (s *Sample) Observe(st Store, o Observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obs := s.seen[st]
	if n := len(obs); n > 0 && obs[n-1].LSN == o.LSN {
		return
	}
	s.seen[st] = append(obs, o)
}

// Visible reports whether the sample's change record is known and a store
// has shown a snapshot that includes the write.
func (s *Sample) Visible(st Store) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := firstAtOrAfter(s.seen[st], s.lsn)
	return s.matched && ok
}

// Result is a followed sample's latencies from the source commit; ok false
// means that stage was not observed (a timeout, or the change record never
// matched).
type Result struct {
	Kafka, Redis, API       time.Duration
	KafkaOK, RedisOK, APIOK bool
}

// Result computes the latencies of the stages observed so far.
func (s *Sample) Result() Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r Result
	if !s.matched {
		return r
	}
	r.Kafka, r.KafkaOK = s.kafkaAt.Sub(s.commitTime), true
	if at, ok := firstAtOrAfter(s.seen[Redis], s.lsn); ok {
		r.Redis, r.RedisOK = at.Sub(s.commitTime), true
	}
	if at, ok := firstAtOrAfter(s.seen[API], s.lsn); ok {
		r.API, r.APIOK = at.Sub(s.commitTime), true
	}
	return r
}

// firstAtOrAfter returns when a store first held a snapshot at or after
// commit LSN lsn. A product snapshot carries the full product after a source
// transaction, so any snapshot from that transaction or a later one includes
// the write, whatever other writers did to the product meanwhile.
func firstAtOrAfter(obs []Observation, lsn uint64) (time.Time, bool) {
	for _, o := range obs {
		if o.LSN >= lsn {
			return o.At, true
		}
	}
	return time.Time{}, false
}

// Tracker samples writes and routes change records to their samples. It is
// safe for concurrent use.
type Tracker struct {
	every uint64

	mu       sync.Mutex
	offered  uint64
	pending  map[Key]*Sample
	products map[string]int // product -> samples of it pending a change record
}

// NewTracker samples one write in every (1 samples them all).
func NewTracker(every int) *Tracker {
	return &Tracker{every: uint64(max(every, 1)), pending: map[Key]*Sample{}, products: map[string]int{}}
}

// Offer is told of every write; it returns a sample for one in every N.
func (t *Tracker) Offer(k Key, productID string, writtenAt time.Time) (*Sample, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.offered++
	if t.offered%t.every != 0 {
		return nil, false
	}
	s := &Sample{Key: k, ProductID: productID, WrittenAt: writtenAt}
	t.pending[k] = s
	t.products[productID]++
	return s, true
}

// Wants reports whether a change record of the product may belong to a
// pending sample: the consumer decodes only those. A record read before its
// write was offered is missed, and its sample times out unmatched: the
// writer hears of its commit microseconds after it, the pipeline takes
// milliseconds.
func (t *Tracker) Wants(productID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.products[productID] > 0
}

// Change routes a change record read from Kafka to its sample, if sampled.
func (t *Tracker) Change(k Key, lsn uint64, commitTime, seenAt time.Time) {
	t.mu.Lock()
	s, ok := t.pending[k]
	t.mu.Unlock()
	if ok {
		s.Change(lsn, commitTime, seenAt)
	}
}

// Done stops routing records to a sample: its change records are all in
// (they are written in one Kafka transaction) or it timed out.
func (t *Tracker) Done(s *Sample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[s.Key] != s {
		return
	}
	delete(t.pending, s.Key)
	if t.products[s.ProductID]--; t.products[s.ProductID] <= 0 {
		delete(t.products, s.ProductID)
	}
}

// Matched reports whether the sample's change record has been read.
func (s *Sample) Matched() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.matched
}
