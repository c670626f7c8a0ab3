package cdc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/producer/statestore"
)

// batch is what the stream handler hands the committer: encoded records of
// whole source transactions (final) or the first part of one too large to
// hold (not final: produced into the open Kafka transaction, committed with
// a later batch).
type batch struct {
	records []*kgo.Record
	final   bool
	// commits is false for a batch that only carries an LSN to confirm
	// (transactions with nothing for Kafka, such as heartbeats).
	commits     bool
	checkpoint  sink.Checkpoint
	ackLSN      uint64
	commitTimes []time.Time // of the source transactions, for latency
	// state is the state's changes the records were built from, for the
	// store: a whole batch's once Kafka committed it, a part's (changes
	// too large to hold) as soon as it is produced, marking the store
	// unclean. nil: none.
	state *statestore.Changes
}

func (b *batch) empty() bool { return len(b.records) == 0 && b.ackLSN == 0 }

// committer owns the Kafka writer while streaming: it writes and commits
// batches one after another, in order, and confirms each batch's LSN once
// Kafka committed it. Running beside the stream handler, it lets the
// handler go on reading the slot while a commit is under way; the handler's
// next batch grows meanwhile, so batches are large exactly when the stream
// is behind.
type committer struct {
	w      *sink.Writer
	stream *source.Stream
	// store receives the state's changes after Kafka, as the owner's.
	store *statestore.Store
	owner string
	m     *Metrics
	log   *slog.Logger
	// slowLogged is when a slow transaction was last logged.
	slowLogged time.Time
	// in is unbuffered: a handoff succeeds only when the committer is
	// idle, which is what lets the handler keep accumulating otherwise.
	in        chan *batch
	closeOnce sync.Once
	done      chan struct{}
	err       error // set before done is closed
}

// close ends the committer's input: it finishes what it was given and stops.
func (c *committer) close() { c.closeOnce.Do(func() { close(c.in) }) }

func newCommitter(w *sink.Writer, stream *source.Stream, store *statestore.Store, owner string, m *Metrics, log *slog.Logger) *committer {
	return &committer{w: w, stream: stream, store: store, owner: owner, m: m, log: log, in: make(chan *batch), done: make(chan struct{})}
}

// slowTxn is the time from the first record of a batch to its Kafka commit
// past which the committer says where it went (at most once per
// lateLogEvery): producing, flushing or ending the transaction.
const slowTxn = 500 * time.Millisecond

// run commits batches until in is closed (the handler stopped) or a commit
// fails. It does not watch a context: a shutdown hands it the last batch
// and closes in, and a commit under way is bounded by commitTimeout.
func (c *committer) run() error {
	defer close(c.done)
	for b := range c.in {
		if err := c.write(b); err != nil {
			c.err = err
			return err
		}
	}
	return nil
}

func (c *committer) write(b *batch) error {
	began := time.Now()
	if len(b.records) > 0 {
		if err := c.w.Begin(); err != nil {
			return err
		}
		for _, r := range b.records {
			c.w.Produce(r)
		}
	}
	if !b.final || !b.commits {
		if b.state != nil {
			// Ahead of Kafka: the store says it matches no checkpoint
			// until a whole batch's commit.
			if err := c.store.Apply(b.state, c.owner, ""); err != nil {
				return err
			}
			c.m.stateSpills.Inc()
		}
		if !b.final {
			return nil
		}
	}
	if b.commits {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		// Stamped here so that the store records the checkpoint exactly
		// as Kafka holds it.
		b.checkpoint.WrittenAt = start.UTC()
		err := c.w.Commit(ctx, b.checkpoint)
		cancel()
		if err != nil {
			return err
		}
		now := time.Now()
		if took := now.Sub(began); took >= slowTxn && now.Sub(c.slowLogged) >= lateLogEvery {
			c.slowLogged = now
			c.log.Warn("slow kafka transaction", "took_ms", took.Milliseconds(),
				"produce_ms", start.Sub(began).Milliseconds(), "flush_ms", c.w.LastFlush.Milliseconds(),
				"end_txn_ms", c.w.LastEndTxn.Milliseconds(), "records", len(b.records))
		}
		c.m.kafkaCommit.Observe(now.Sub(start).Seconds())
		c.m.txnTotal.Observe(now.Sub(began).Seconds())
		c.m.txnPhase.WithLabelValues("produce").Observe(start.Sub(began).Seconds())
		c.m.txnPhase.WithLabelValues("flush").Observe(c.w.LastFlush.Seconds())
		c.m.txnPhase.WithLabelValues("end").Observe(c.w.LastEndTxn.Seconds())
		c.m.kafkaTxns.Inc()
		c.m.sourceTxns.Add(float64(len(b.commitTimes)))
		for _, ct := range b.commitTimes {
			c.m.commitLatency.Observe(now.Sub(ct).Seconds())
		}
	}
	if b.ackLSN > 0 {
		// Kafka holds it: confirmable, whatever the store does next.
		c.stream.Ack(b.ackLSN)
	}
	if b.commits {
		// Only now: the store must never run ahead of what Kafka holds
		// under a clean mark. A crash in between leaves it behind, which
		// the next start sees and repairs.
		if err := c.store.Apply(b.state, c.owner, checkpointMark(b.checkpoint)); err != nil {
			return err
		}
	}
	return nil
}

// failed returns the committer's error once it stopped, else nil.
func (c *committer) failed() error {
	select {
	case <-c.done:
		if c.err != nil {
			return c.err
		}
		return fmt.Errorf("kafka committer stopped")
	default:
		return nil
	}
}
