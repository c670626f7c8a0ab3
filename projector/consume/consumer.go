// Package consume projects stock.levels.v1 into the Redis stock cache: a
// Kafka consumer group (read_committed, from the earliest offset when the
// group has no commit) with one worker goroutine per assigned partition,
// started on assign and drained on revoke. A worker decodes a batch, keeps
// the latest snapshot of each product, applies the batch to Redis in one
// pipelined round trip through stockstore, and only then commits the batch's
// offsets. Redis failures are retried with backoff and nothing is committed
// meanwhile, so a crash at any point replays records that the idempotent
// store then skips.
//
// It must never know about PostgreSQL or HTTP serving.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/stockpipe/stock/internal/stockstore"
)

// Store is what the consumer needs of the stock cache.
type Store interface {
	Apply(ctx context.Context, snaps []stockstore.Snapshot, marks ...stockstore.Watermark) ([]bool, error)
}

// Consumer projects one topic into a Store. Run it once.
type Consumer struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	metrics *metrics
	kprom   *kprom.Metrics

	mu      sync.Mutex
	workers map[int32]*worker // by partition; one topic only

	// cacheLost is signalled by workers whose writes found no cache generation
	// (stockstore.ErrNoGeneration). One pending signal is enough: the
	// guard checks Redis itself, so further signals are dropped.
	cacheLost chan struct{}
}

// New returns a Consumer; it connects when Run starts.
func New(cfg Config, store Store, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring consumer: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return &Consumer{
		cfg:       cfg,
		store:     store,
		log:       log,
		metrics:   m,
		kprom:     kprom.NewMetrics("stock_projector_kafka", kprom.Registerer(reg)),
		workers:   make(map[int32]*worker),
		cacheLost: make(chan struct{}, 1),
	}, nil
}

// CacheLost delivers a signal when a write found that Redis lost the cache
// (no active generation). The workers keep retrying their batches, without
// committing, until a generation is active again: pass it to a
// rebuild.Guard (projector/rebuild), which rebuilds the cache.
func (c *Consumer) CacheLost() <-chan struct{} { return c.cacheLost }

func (c *Consumer) signalLost() {
	select {
	case c.cacheLost <- struct{}{}:
	default:
	}
}

// metadataMinAge is the shortest time between two metadata refreshes of the
// live consumer: short enough that a moved leader costs little freshness,
// long enough that a broker down for good is not asked about in a loop.
const metadataMinAge = 250 * time.Millisecond

// newClient builds the live consumer group's Kafka client, the only one
// that joins the group; the rebuild, the dead-letter tools, status and
// HasCommittedOffsets each build their own, outside any group.
func (c *Consumer) newClient() (*kgo.Client, error) {
	opts, err := c.cfg.Kafka.Opts()
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(opts,
		kgo.ClientID(c.cfg.ClientID),
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(c.cfg.Topic),
		// A partition whose leader moved (a broker stopped or died) is
		// fetched again after the next metadata refresh, which franz-go
		// spaces by this much (5 s by default): every projected product
		// stood still that long in a rolling restart of the brokers.
		kgo.MetadataMinAge(metadataMinAge),
		// Only committed producer transactions: aborted writes never reach
		// Redis.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers are delivered too (workers skip them), so a
		// caught-up partition commits past its last marker: the group's lag
		// reads 0, not 1, in the metric and in Kafka's own tools.
		kgo.KeepControlRecords(),
		// A group without committed offsets replays the compacted topic
		// from its start, which rebuilds the whole cache.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Workers mark a batch's last record once Redis acknowledged it;
		// only marked offsets are committed, every CommitInterval, on revoke
		// and at shutdown.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(c.cfg.CommitInterval),
		kgo.AutoCommitCallback(c.committed),
		// Rebalance callbacks never run while the poll loop hands records
		// to workers, so a record is never sent to a worker that is gone.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.WithLogger(kslog.New(c.log)),
		kgo.WithHooks(c.kprom),
	)...)
}

// Run consumes until ctx is done, then finishes the batches in hand (under
// DrainTimeout), commits them and leaves the group. It returns nil on a
// clean shutdown.
func (c *Consumer) Run(ctx context.Context) error {
	cl, err := c.newClient()
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	if err := ensureTopic(ctx, cl, c.cfg.DeadLetterTopic); err != nil {
		cl.Close()
		return err
	}
	defer func() {
		c.stopAll()
		c.commitMarked(ctx, cl)
		cl.AllowRebalance()
		cl.Close()
	}()
	c.log.Info("consuming", "topic", c.cfg.Topic, "group", c.cfg.Group, "brokers", c.cfg.Kafka.Brokers)

	for {
		// Poll at most a few batches per partition round; the workers'
		// channels hold the rest of the backpressure.
		fetches := cl.PollRecords(ctx, 4*c.cfg.BatchSize)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			c.log.Error("fetching", "topic", topic, "partition", p, "error", err)
		})
		var stopped bool
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if stopped || len(p.Records) == 0 {
				return
			}
			last := p.Records[len(p.Records)-1].Offset
			c.metrics.consumerLag.WithLabelValues(p.Topic, partitionLabel(p.Partition)).
				Set(float64(max(p.HighWatermark-last-1, 0)))
			data := 0
			for _, r := range p.Records {
				if !r.Attrs.IsControl() {
					data++
				}
			}
			c.metrics.consumed.Add(float64(data))
			c.mu.Lock()
			w := c.workers[p.Partition]
			c.mu.Unlock()
			if w != nil {
				w.hwm.Store(p.HighWatermark)
			}
			if w == nil {
				// Cannot happen while rebalances are blocked on poll; the
				// records are not committed, so the owner reads them again.
				c.log.Error("records for a partition without worker", "topic", p.Topic, "partition", p.Partition)
				return
			}
			select {
			case w.recs <- p.Records:
			case <-ctx.Done():
				stopped = true
			}
		})
		cl.AllowRebalance()
	}
}

// ensureTopic creates topic with the broker's default partitions and
// replication when it does not exist. It looks first: on a secured cluster
// the projector may write its dead-letter topic without the right to create
// topics, and there a request to create one that exists is refused too.
func ensureTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("looking up dead-letter topic %s: %w", topic, err)
	}
	switch d, ok := details[topic]; {
	case ok && d.Err == nil:
		return nil
	case ok && errors.Is(d.Err, kerr.TopicAuthorizationFailed):
		return fmt.Errorf("looking up dead-letter topic %s (the projector needs Describe and Write on it): %w", topic, d.Err)
	}
	// Missing, or not answered clearly: create it, as before.
	resp, err := adm.CreateTopic(ctx, -1, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating dead-letter topic %s: %w", topic, err)
	}
	return nil
}

func (c *Consumer) assigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, parts := range assigned {
		for _, p := range parts {
			w := newWorker(c, cl, topic, p)
			c.workers[p] = w
			go w.run()
		}
		c.log.Info("partitions assigned", "topic", topic, "partitions", parts)
	}
}

// revoked drains the workers of revoked partitions: each finishes the batch
// in hand, and what they applied is committed before the partition moves to
// another member.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.stop(revoked, "partitions revoked")
	c.commitMarked(ctx, cl)
}

// commitMarked commits the offsets marked so far, synchronously.
func (c *Consumer) commitMarked(ctx context.Context, cl *kgo.Client) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.CommitTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.metrics.commitErrs.Inc()
		c.log.Warn("committing offsets", "error", err)
	}
}

// committed is the background commit's callback: a failed commit is
// counted and logged; the next one covers it.
func (c *Consumer) committed(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err == nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err = kerr.ErrorForCode(p.ErrorCode); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		c.metrics.commitErrs.Inc()
		c.log.Warn("committing offsets", "error", err)
	}
}

// lost stops the workers of lost partitions. Their commits will likely fail
// (the group moved on); the new owner replays, which is harmless.
func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.stop(lost, "partitions lost")
}

func (c *Consumer) stop(parts map[string][]int32, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ws []*worker
	for topic, ps := range parts {
		for _, p := range ps {
			if w := c.workers[p]; w != nil {
				delete(c.workers, p)
				ws = append(ws, w)
				c.metrics.consumerLag.DeleteLabelValues(topic, partitionLabel(p))
			}
		}
		if len(ps) > 0 {
			c.log.Info(why, "topic", topic, "partitions", ps)
		}
	}
	c.drain(ws)
}

// stopAll drains every worker at shutdown, before the client leaves the
// group.
func (c *Consumer) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := make([]*worker, 0, len(c.workers))
	for p, w := range c.workers {
		delete(c.workers, p)
		ws = append(ws, w)
	}
	c.drain(ws)
}

// drain tells ws to quit and waits for them under DrainTimeout. A worker
// still blocked after it (a Redis call stuck past its own timeout) is left
// to finish alone: its commit, if any, can only be of applied records.
func (c *Consumer) drain(ws []*worker) {
	for _, w := range ws {
		close(w.quit)
	}
	deadline := time.NewTimer(c.cfg.DrainTimeout)
	defer deadline.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-deadline.C:
			c.log.Warn("partition worker did not drain in time", "partition", w.partition, "timeout", c.cfg.DrainTimeout.String())
			return
		}
	}
}
