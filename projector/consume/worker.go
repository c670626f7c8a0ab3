package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/retry"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/schemas"
)

// worker projects one partition: it owns the partition's batches from the
// moment they are handed over until their offsets are committed.
type worker struct {
	c         *Consumer
	cl        *kgo.Client
	log       *slog.Logger
	topic     string
	partition int32

	// recs receives the records of each poll for this partition. Four
	// polls of buffer let the poll loop run ahead of a worker busy in Redis
	// without holding up the other partitions on every poll; beyond that,
	// the poll loop waits, which is the backpressure towards Kafka.
	recs chan []*kgo.Record
	quit chan struct{} // closed by the consumer to stop the worker
	done chan struct{} // closed by the worker when it returned

	// last applied position and its commit time, for the watermark of
	// batches in which no record decoded.
	last       position.Position
	lastCommit time.Time
	// hwm is the partition's high watermark as of the latest fetch handed
	// to this worker: a batch ending there left nothing behind it.
	hwm atomic.Int64
}

func newWorker(c *Consumer, cl *kgo.Client, topic string, partition int32) *worker {
	return &worker{
		c: c, cl: cl, topic: topic, partition: partition,
		log:  c.log.With("topic", topic, "partition", partition),
		recs: make(chan []*kgo.Record, 4),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
}

func (w *worker) run() {
	defer close(w.done)
	var pending []*kgo.Record
	for {
		if len(pending) == 0 {
			select {
			case <-w.quit:
				return
			case recs := <-w.recs:
				pending = recs
			}
		}
		pending = w.fill(pending)
		n := min(len(pending), w.c.cfg.BatchSize)
		if !w.process(pending[:n]) {
			return
		}
		pending = pending[n:]
		select {
		case <-w.quit:
			// The batch in hand is done; the rest stays uncommitted.
			return
		default:
		}
	}
}

// fill tops pending up towards BatchSize with records already handed over
// and, with a Linger, with records arriving within it.
func (w *worker) fill(pending []*kgo.Record) []*kgo.Record {
	size := w.c.cfg.BatchSize
	var linger <-chan time.Time
	if w.c.cfg.Linger > 0 && len(pending) < size {
		t := time.NewTimer(w.c.cfg.Linger)
		defer t.Stop()
		linger = t.C
	}
	for len(pending) < size {
		select {
		case recs := <-w.recs:
			// Clip first: the fetched slices may share a backing array.
			pending = append(slices.Clip(pending), recs...)
			continue
		default:
		}
		if linger == nil {
			return pending
		}
		select {
		case recs := <-w.recs:
			pending = append(slices.Clip(pending), recs...)
		case <-linger:
			return pending
		case <-w.quit:
			return pending
		}
	}
	return pending
}

// process applies and commits one batch. It returns false when told to quit
// before the batch was applied; the batch is then left uncommitted for the
// partition's next owner.
func (w *worker) process(recs []*kgo.Record) bool {
	m := w.c.metrics
	b := NewBatch(recs, Trust{AcceptNonTransactional: w.c.cfg.AcceptNonTransactional})
	for _, bad := range b.Bad {
		m.decodeErrs.Inc()
		m.badRecords.WithLabelValues(bad.Reason).Inc()
		w.log.Error("dead-lettering bad record", "offset", bad.Rec.Offset, "key", fmt.Sprintf("%.64q", bad.Rec.Key),
			"reason", bad.Reason, "error", bad.Err)
	}
	// Dead letters are written before the batch's offsets can be committed,
	// so a crash never loses one (it may write one twice).
	if len(b.Bad) > 0 && !w.deadLetter(b.Bad) {
		return false
	}
	m.superseded.Add(float64(b.Superseded))
	if !b.Last.IsZero() {
		w.last, w.lastCommit = b.Last, b.LastCommit
	}
	// The commit goes past the batch's last record, a transaction marker
	// included; the watermark names the last data record, as a replay
	// (which never sees markers) would.
	lastRec := recs[len(recs)-1]
	lastData := lastRec
	for i := len(recs) - 1; i >= 0 && lastData.Attrs.IsControl(); i-- {
		lastData = recs[i]
	}
	var applied []bool
	if !lastData.Attrs.IsControl() {
		mark := stockstore.Watermark{
			Topic: w.topic, Partition: w.partition, Offset: lastData.Offset,
			Position: w.last, CommitTime: w.lastCommit,
			CaughtUp: lastRec.Offset+1 >= w.hwm.Load(),
		}
		var ok bool
		if applied, ok = w.apply(b.Snaps, mark); !ok {
			return false
		}
	}
	now := time.Now()
	for i, yes := range applied {
		if !yes {
			m.stale.Inc()
			continue
		}
		m.applied.Inc()
		if ct := b.Snaps[i].CommitTime; !ct.IsZero() {
			m.endToEnd.Observe(now.Sub(ct).Seconds())
		}
	}
	m.batchSize.Observe(float64(len(recs)))

	// Redis has acknowledged: only now may the offset move. The client
	// commits marked offsets in the background; a failed commit is covered
	// by the next, and if none comes the next owner replays records Redis
	// then skips.
	w.cl.MarkCommitRecords(lastRec)
	return true
}

// deadLetter writes bad records to the dead-letter topic, retrying with
// backoff until the broker acknowledges or the worker is told to quit.
func (w *worker) deadLetter(bad []BadRecord) bool {
	m := w.c.metrics
	recs := make([]*kgo.Record, len(bad))
	for i, b := range bad {
		recs[i] = deadLetterRecord(w.c.cfg.DeadLetterTopic, b)
	}
	return w.backoff().Until(w.quit, func(attempt int, wait time.Duration) bool {
		for _, r := range recs {
			r.Partition, r.Offset = 0, 0 // a fresh produce of the same records
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.c.cfg.CommitTimeout)
		err := w.cl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		if err == nil {
			m.deadLetters.Add(float64(len(recs)))
			return true
		}
		m.dlqErrs.Inc()
		w.log.Warn("writing dead letters, will retry", "attempt", attempt, "topic", w.c.cfg.DeadLetterTopic,
			"records", len(recs), "backoff", wait.String(), "error", err)
		return false
	})
}

// deadLetterRecord copies a bad record, key, value and headers as they were,
// adding why and where it came from in headers (dlq_*), so an operator can
// fix and replay it.
func deadLetterRecord(topic string, b BadRecord) *kgo.Record {
	r := b.Rec
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+7)
	key, value := r.Key, r.Value
	// A dead letter must fit the broker's limit, or writing it would be
	// retried for ever and wedge the partition: past it, the record's own
	// headers are dropped and its key and value cut, their sizes kept.
	if size := len(key) + len(value) + headersSize(r.Headers); size > maxDeadLetterBytes {
		hs = append(hs, kgo.RecordHeader{Key: HeaderDLQOriginalBytes, Value: []byte(strconv.Itoa(size))})
		key = key[:min(len(key), schemas.MaxIDBytes)]
		value = value[:min(len(value), maxDeadLetterBytes/2)]
	} else {
		for _, h := range r.Headers {
			// The record's own dlq_* headers would pass for ours: a
			// reader taking the first reason would read a forged one.
			if !strings.HasPrefix(h.Key, "dlq_") {
				hs = append(hs, h)
			}
		}
	}
	reason := b.Err.Error()
	reason = reason[:min(len(reason), 4096)]
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderDLQReasonCode, Value: []byte(b.Reason)},
		kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderDLQTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderDLQPartition, Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		kgo.RecordHeader{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		kgo.RecordHeader{Key: HeaderDLQTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{Topic: topic, Key: key, Value: value, Headers: hs}
}

// maxDeadLetterBytes keeps a dead letter below Kafka's default
// max.message.bytes with room for the dlq_* headers.
const maxDeadLetterBytes = 512 << 10

func headersSize(hs []kgo.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// Headers added to a dead-lettered record.
const (
	HeaderDLQReason = "dlq_reason"
	// HeaderDLQReasonCode is the short reason (not_transactional, bad_key,
	// undecodable, breaks_contract, bad_tombstone).
	HeaderDLQReasonCode = "dlq_reason_code"
	// HeaderDLQOriginalBytes is set when the record was too large to keep
	// whole: its size; key and value are then cut and its headers dropped.
	HeaderDLQOriginalBytes = "dlq_original_bytes"
	HeaderDLQTopic         = "dlq_topic"
	HeaderDLQPartition     = "dlq_partition"
	HeaderDLQOffset        = "dlq_offset"
	HeaderDLQTime          = "dlq_time"
)

// apply writes the batch to Redis, retrying with exponential backoff until
// it succeeds or the worker is told to quit. It deliberately does not use
// the program's context: a shutdown finishes the batch in hand.
func (w *worker) apply(snaps []stockstore.Snapshot, mark stockstore.Watermark) ([]bool, bool) {
	m := w.c.metrics
	var applied []bool
	ok := w.backoff().Until(w.quit, func(attempt int, wait time.Duration) bool {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), w.c.cfg.ApplyTimeout)
		var err error
		applied, err = w.c.store.Apply(ctx, snaps, mark)
		cancel()
		if err == nil {
			m.applyTime.Observe(time.Since(start).Seconds())
			return true
		}
		m.applyErrs.Inc()
		if errors.Is(err, stockstore.ErrNoGeneration) {
			// Redis lost the cache: nothing was written. The batch waits,
			// uncommitted, for the rebuild to activate a new generation.
			w.c.signalLost()
			w.log.Warn("redis lost the cache, batch waits for the rebuild", "attempt", attempt,
				"snapshots", len(snaps), "offset", mark.Offset, "backoff", wait.String())
		} else {
			w.log.Warn("applying batch to redis, will retry", "attempt", attempt, "snapshots", len(snaps),
				"offset", mark.Offset, "backoff", wait.String(), "error", err)
		}
		return false
	})
	if !ok {
		w.log.Info("stopping with a batch not applied; it stays uncommitted", "offset", mark.Offset)
		return nil, false
	}
	return applied, true
}

// backoff is the wait between a worker's failed writes.
func (w *worker) backoff() retry.Backoff {
	return retry.Backoff{Min: w.c.cfg.RetryMin, Max: w.c.cfg.RetryMax}
}
