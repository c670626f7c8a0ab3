package rebuild

// The replay half of a rebuild: reading the topic's partitions up to given
// offsets and applying them to the new generation, with several Redis round
// trips at once (rebuild.go runs it between the steps of the switch).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/retry"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/consume"
)

// replay reads the assigned partitions and applies them to one store.
type replay struct {
	cfg     Config
	cl      *kgo.Client
	store   *stockstore.Store
	log     *slog.Logger
	m       *metrics
	next    map[int32]int64 // next offset to read per partition
	todo    int64
	start   time.Time
	records atomic.Int64
	applied atomic.Int64
	bad     atomic.Int64
}

type chunk struct {
	partition int32
	recs      []*kgo.Record
	// caughtUp: the last chunk read up to this phase's end of its partition.
	caughtUp bool
}

// until replays every partition up to (not including) ends, then returns
// once every batch read is applied.
func (r *replay) until(ctx context.Context, ends map[int32]int64) error {
	g, gctx := errgroup.WithContext(ctx)
	// Two chunks per worker keep them busy while the poll loop decodes
	// nothing itself; beyond that the loop waits (backpressure on Kafka).
	work := make(chan chunk, 2*r.cfg.Workers)
	for range r.cfg.Workers {
		g.Go(func() error {
			for c := range work {
				if err := r.apply(gctx, c); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		return r.read(gctx, ends, work)
	})
	return g.Wait()
}

func (r *replay) read(ctx context.Context, ends map[int32]int64, work chan<- chunk) error {
	left := func() bool {
		for p, e := range ends {
			if r.next[p] < e {
				return true
			}
		}
		return false
	}
	tick := time.NewTicker(r.cfg.Progress)
	defer tick.Stop()
	lastRecs, lastAt := r.records.Load(), time.Now()
	for left() {
		select {
		case <-tick.C:
			n := r.records.Load()
			rate := float64(n-lastRecs) / time.Since(lastAt).Seconds()
			lastRecs, lastAt = n, time.Now()
			r.m.rate.Set(rate)
			eta := "unknown"
			if rate > 0 {
				eta = (time.Duration(float64(max(r.todo-n, 0))/rate*1e9) * time.Nanosecond).Round(time.Second).String()
			}
			r.log.Info("rebuild progress", "records", n, "of", r.todo, "records_per_second", int64(rate), "eta", eta)
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.Progress)
		fs := r.cl.PollRecords(pctx, 8*r.cfg.BatchSize)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var send []chunk
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			var recs []*kgo.Record
			for _, rec := range fp.Records {
				if rec.Offset < r.next[fp.Partition] {
					continue
				}
				r.next[fp.Partition] = rec.Offset + 1
				// Past this phase's end: the next phase (or nobody) wants
				// it; applying it anyway is harmless and keeps it simple.
				if !rec.Attrs.IsControl() {
					recs = append(recs, rec)
				}
			}
			for c := range slices.Chunk(recs, r.cfg.BatchSize) {
				send = append(send, chunk{partition: fp.Partition, recs: c})
			}
			if n := len(send); n > 0 && send[n-1].partition == fp.Partition && r.next[fp.Partition] >= ends[fp.Partition] {
				send[n-1].caughtUp = true
			}
		})
		for _, c := range send {
			select {
			case work <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func (r *replay) apply(ctx context.Context, c chunk) error {
	b := consume.NewBatch(c.recs, consume.Trust{AcceptNonTransactional: r.cfg.AcceptNonTransactional})
	for _, bad := range b.Bad {
		// The live projector dead-letters these; a rebuild only reports them.
		r.bad.Add(1)
		r.log.Error("skipping bad record", "partition", c.partition, "offset", bad.Rec.Offset, "reason", bad.Reason, "error", bad.Err)
	}
	last := c.recs[len(c.recs)-1]
	mark := stockstore.Watermark{Topic: last.Topic, Partition: c.partition, Offset: last.Offset,
		Position: b.Last, CommitTime: b.LastCommit, CaughtUp: c.caughtUp}
	var marks []stockstore.Watermark
	if !b.Last.IsZero() {
		marks = append(marks, mark)
	}
	backoff := retry.Backoff{Min: r.cfg.RetryMin, Max: r.cfg.RetryMax}
	if !backoff.Until(ctx.Done(), func(attempt int, wait time.Duration) bool {
		actx, cancel := context.WithTimeout(ctx, r.cfg.ApplyTimeout)
		applied, err := r.store.Apply(actx, b.Snaps, marks...)
		cancel()
		if err == nil {
			for _, a := range applied {
				if a {
					r.applied.Add(1)
				}
			}
			return true
		}
		r.log.Warn("applying rebuild batch, will retry", "attempt", attempt, "backoff", wait.String(), "error", err)
		return false
	}) {
		return ctx.Err()
	}
	r.records.Add(int64(len(c.recs)))
	r.m.records.Add(float64(len(c.recs)))
	return nil
}
