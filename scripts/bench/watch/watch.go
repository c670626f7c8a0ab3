// Package watch reads a change topic from its end as a downstream consumer
// would (read_committed) and measures, for every record, the time from its
// source commit to the moment it could be read. Records are attributed to
// windows of source commit time, one per benchmark phase. It must never
// write to Kafka.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/scripts/bench/latency"
)

// Config of a watch.
type Config struct {
	Brokers []string
	Topic   string
	// CommitTime extracts a record's source commit time; ok false skips
	// the record (a tombstone, a snapshot read).
	CommitTime func(r *kgo.Record) (t time.Time, ok bool)
	// OnRecord, when set, sees every record with the time it was read, on
	// the consuming goroutine.
	OnRecord func(r *kgo.Record, readAt time.Time)
}

// Window gathers the records whose source commit time falls in [From, To).
type Window struct {
	Name    string
	From    time.Time
	Latency latency.Recorder // commit to read, per record

	mu        sync.Mutex
	to        time.Time // zero while open
	records   int64
	firstRead time.Time
	lastRead  time.Time
}

// Close ends the window at source commit time to.
func (w *Window) Close(to time.Time) {
	w.mu.Lock()
	w.to = to
	w.mu.Unlock()
}

// Counts returns how many records the window holds and when the first and
// the last of them were read.
func (w *Window) Counts() (records int64, firstRead, lastRead time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.records, w.firstRead, w.lastRead
}

func (w *Window) add(commit, readAt time.Time) bool {
	w.mu.Lock()
	in := !commit.Before(w.From) && (w.to.IsZero() || commit.Before(w.to))
	if in {
		w.records++
		if w.firstRead.IsZero() {
			w.firstRead = readAt
		}
		w.lastRead = readAt
	}
	w.mu.Unlock()
	if in {
		w.Latency.Add(readAt.Sub(commit))
	}
	return in
}

// Watch consumes one topic from the end offsets it found when created.
type Watch struct {
	cfg    Config
	client *kgo.Client

	mu       sync.Mutex
	windows  []*Window
	lastRead time.Time
	total    int64
}

// New positions a read_committed consumer at the topic's current end.
func New(ctx context.Context, cfg Config) (*Watch, error) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		return nil, fmt.Errorf("creating admin client: %w", err)
	}
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, cfg.Topic)
	admin.Close()
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", cfg.Topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", cfg.Topic, err)
	}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { parts[o.Partition] = kgo.NewOffset().At(o.Offset) })
	if len(parts) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", cfg.Topic)
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The broker answers a fetch as soon as one byte is there; the wait
		// only bounds an idle fetch.
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("creating consumer of %s: %w", cfg.Topic, err)
	}
	return &Watch{cfg: cfg, client: client}, nil
}

// Open starts a window at source commit time from.
func (w *Watch) Open(name string, from time.Time) *Window {
	win := &Window{Name: name, From: from}
	w.mu.Lock()
	w.windows = append(w.windows, win)
	w.mu.Unlock()
	return win
}

// LastRead returns when the last record was read and how many were read.
func (w *Watch) LastRead() (time.Time, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastRead, w.total
}

// Run consumes until ctx ends, then closes the client.
func (w *Watch) Run(ctx context.Context) error {
	defer w.client.Close()
	for {
		fetches := w.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var errs []error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("fetching %s/%d: %w", t, p, err))
			}
		})
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		readAt := time.Now()
		w.mu.Lock()
		windows := w.windows
		w.mu.Unlock()
		var n int64
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			if w.cfg.OnRecord != nil {
				w.cfg.OnRecord(r, readAt)
			}
			commit, ok := w.cfg.CommitTime(r)
			if !ok {
				return
			}
			for _, win := range windows {
				win.add(commit, readAt)
			}
		})
		if n > 0 {
			w.mu.Lock()
			w.lastRead, w.total = readAt, w.total+n
			w.mu.Unlock()
		}
	}
}

// HeaderTime is the CommitTime of this project's topics: the CloudEvents
// ce_time header, the source commit time.
func HeaderTime(r *kgo.Record) (time.Time, bool) {
	for _, h := range r.Headers {
		if h.Key == "ce_time" {
			t, err := time.Parse(time.RFC3339Nano, string(h.Value))
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// DebeziumTime is the CommitTime of a Debezium change event in JSON
// without schemas: source.ts_us (the commit time in microseconds), or
// source.ts_ms where the connector has no ts_us. Snapshot reads and
// tombstones are skipped.
func DebeziumTime(r *kgo.Record) (time.Time, bool) {
	if len(r.Value) == 0 {
		return time.Time{}, false
	}
	var ev struct {
		Op     string `json:"op"`
		Source struct {
			TsMs int64 `json:"ts_ms"`
			TsUs int64 `json:"ts_us"`
		} `json:"source"`
	}
	if err := json.Unmarshal(r.Value, &ev); err != nil || ev.Op == "r" {
		return time.Time{}, false
	}
	switch {
	case ev.Source.TsUs > 0:
		return time.UnixMicro(ev.Source.TsUs), true
	case ev.Source.TsMs > 0:
		return time.UnixMilli(ev.Source.TsMs), true
	}
	return time.Time{}, false
}
