package rebuild

// The lost-cache guard: it watches a running projection and rebuilds (Lost)
// a cache Redis lost under it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/retry"
	"github.com/stockpipe/stock/internal/stockstore"
)

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Rebuild is how the lost cache is rebuilt; it always replays from the
	// start of the topic, whatever its offsets or time say.
	Rebuild Config
	// Every is how often the guard checks Redis when no write has run into
	// the loss: a quiet source writes nothing, and the cache must not stay
	// empty until it does.
	Every time.Duration
	// CheckTimeout bounds one check.
	CheckTimeout time.Duration
}

// DefaultGuardConfig returns the defaults; callers fill Rebuild.
func DefaultGuardConfig() GuardConfig {
	return GuardConfig{Every: 5 * time.Second, CheckTimeout: 2 * time.Second}
}

// Validate reports every problem of c.
func (c GuardConfig) Validate() error {
	var errs []error
	if c.Every <= 0 || c.CheckTimeout <= 0 {
		errs = append(errs, fmt.Errorf("cache check interval and timeout must be positive, got %s and %s", c.Every, c.CheckTimeout))
	}
	if err := c.Rebuild.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("rebuild: %w", err))
	}
	return errors.Join(errs...)
}

// Guard watches a running projection for Redis losing the cache (flushed,
// or restarted without persistence: the active generation pointer is gone)
// and rebuilds it from the topic while the consumer's workers hold their
// batches, uncommitted, until a generation is active again. Records the
// workers applied before the loss are below the offsets the rebuild replays
// to; records after it are applied by the workers once the new generation is
// active. Nothing is lost, and nothing is counted twice: the cache is
// positions, not sums.
type Guard struct {
	cfg   GuardConfig
	store *stockstore.Store
	log   *slog.Logger
	reg   prometheus.Registerer

	lost      prometheus.Counter
	recovered prometheus.Counter
	failovers prometheus.Counter

	// replid is Redis' replication id at the last check ("" before the
	// first one, and after a rebuild).
	replid string
}

// NewGuard returns a Guard of store, which must follow the active
// generation (not pinned).
func NewGuard(cfg GuardConfig, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring cache guard: %w", err)
	}
	const ns, sub = "stock", "projector"
	g := &Guard{
		cfg: cfg, store: store, log: log, reg: reg,
		lost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "cache_lost_total",
			Help: "Times this projector found Redis without the active cache generation (flushed, or restarted without persistence)."}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "cache_recovered_total",
			Help: "Times a lost cache was active again after a rebuild (by this projector or another)."}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_failovers_total",
			Help: "Times Redis' replication id changed under this projector: a replica was promoted, or the primary restarted."}),
	}
	for _, c := range []prometheus.Collector{g.lost, g.recovered, g.failovers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering cache guard metrics: %w", err)
		}
	}
	return g, nil
}

// Run checks Redis at once, then every Every and whenever lost delivers
// (consume.Consumer.CacheLost), until ctx ends; it returns nil then. A lost
// cache is rebuilt; failures are logged and retried with backoff, never
// returned, so that a Redis in trouble does not make the projector exit and
// restart in a loop.
func (g *Guard) Run(ctx context.Context, lost <-chan struct{}) error {
	t := time.NewTicker(g.cfg.Every)
	defer t.Stop()
	for when := "at start"; ; when = "while running" {
		if ctx.Err() != nil {
			return nil
		}
		if lost, err := g.isLost(ctx); err == nil && lost {
			g.recover(ctx, when)
			g.replid = "" // the rebuild wrote everything again, on whatever Redis is now
		}
		g.watchFailover(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-lost:
		}
	}
}

// watchFailover compares Redis' replication id with the one seen at the
// last check. A change means another primary (a replica was promoted) or a
// restarted one, and the writes the old one acknowledged last may be gone
// with it, their offsets already committed. When every write waited for a
// replica (--redis-wait-replicas), every batch whose offsets were committed
// is on the replica the Sentinel promotes (the most up to date), and the
// batches in flight are retried by the workers: nothing to repair.
// Otherwise only the topic knows what was lost, and the cache is rebuilt
// from it while the workers go on writing to the new primary.
func (g *Guard) watchFailover(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, g.cfg.CheckTimeout)
	defer cancel()
	id, err := g.store.ReplicationID(cctx)
	if err != nil || id == "" {
		return // Redis down is the workers' to retry
	}
	prev := g.replid
	g.replid = id
	if prev == "" || prev == id {
		return
	}
	g.failovers.Inc()
	if g.store.Waits() {
		g.log.Warn("redis changed primary (replication id changed); every committed batch was on a replica, nothing to repair",
			"previous_replication_id", prev, "replication_id", id)
		return
	}
	g.log.Error("redis changed primary (replication id changed) and writes were not waiting for replicas: writes the old primary "+
		"acknowledged may be lost; rebuilding the cache from the topic (--redis-wait-replicas makes a failover lose nothing)",
		"previous_replication_id", prev, "replication_id", id, "prefix", g.store.Prefix(), "topic", g.cfg.Rebuild.Topic)
	cfg := g.cfg.Rebuild
	cfg.FromOffsets, cfg.FromTime = nil, time.Time{} // all of it: what was lost is not known
	backoff := retry.Backoff{Min: cfg.RetryMin, Max: cfg.RetryMax}
	backoff.Until(ctx.Done(), func(_ int, wait time.Duration) bool {
		st, err := Run(ctx, cfg, g.store, g.log, g.reg)
		switch {
		case ctx.Err() != nil:
			return true
		case err == nil:
			g.recovered.Inc()
			g.log.Info("cache rebuilt after the failover", "generation", st.Generation, "records", st.Records, "elapsed", st.Duration.String())
			return true
		case errors.Is(err, stockstore.ErrRebuildRunning):
			g.log.Info("another process is rebuilding the cache; it covers the failover", "error", err)
			return true
		default:
			g.log.Error("rebuilding the cache after the failover failed, will retry", "backoff", wait.String(), "error", err)
			return false
		}
	})
	g.replid = ""
}

// isLost reports whether Redis answers without an active generation (or,
// on a Cluster, with its pointer copies split while no rebuild is switching
// them: a rebuild crashed half way through the switch, leaving writers and
// readers on different generations). Redis down is not a loss: the workers
// retry until it answers; err says so.
func (g *Guard) isLost(ctx context.Context) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, g.cfg.CheckTimeout)
	defer cancel()
	// The lock first: a split seen after it was free is not a switch under
	// way (a rebuild replays for far longer than these two reads take).
	locked, err := g.store.RebuildLocked(cctx)
	var ps stockstore.PointerState
	if err == nil {
		ps, err = g.store.Pointer(cctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			g.log.Warn("cannot check the cache generation", "error", err)
		}
		return false, err
	}
	return ps == stockstore.PointerMissing || (ps == stockstore.PointerSplit && !locked), nil
}

// recover rebuilds the lost cache, or waits for the process that does,
// until a generation is active or ctx ends. when ("at start", "while
// running") is said in the log lines.
func (g *Guard) recover(ctx context.Context, when string) {
	g.lost.Inc()
	g.log.Error("redis lost the stock cache "+when+" (no active generation: flushed, or restarted without persistence; or a generation switch left half done); rebuilding it from the topic",
		"prefix", g.store.Prefix(), "topic", g.cfg.Rebuild.Topic)
	backoff := retry.Backoff{Min: g.cfg.Rebuild.RetryMin, Max: g.cfg.Rebuild.RetryMax}
	// true: nothing more to try (the cache is back, or ctx ended).
	backoff.Until(ctx.Done(), func(attempt int, wait time.Duration) bool {
		if attempt > 1 {
			if lost, err := g.isLost(ctx); err == nil && !lost {
				g.recovered.Inc()
				g.log.Info("cache rebuilt " + when + " by another process")
				return true
			}
		}
		st, done, err := Lost(ctx, g.cfg.Rebuild, g.store, g.log, g.reg)
		switch {
		case ctx.Err() != nil:
			g.log.Warn("stopping with the lost cache not rebuilt; the next start rebuilds it", "error", err)
			return true
		case err == nil && done:
			g.recovered.Inc()
			g.log.Info("cache rebuilt "+when, "generation", st.Generation, "records", st.Records,
				"elapsed", st.Duration.String(), "active_after", st.Switched.String())
			return true
		case err == nil:
			g.recovered.Inc()
			g.log.Info("cache rebuilt " + when + " by another process")
			return true
		case errors.Is(err, stockstore.ErrRebuildRunning):
			g.log.Info("another process is rebuilding the cache; waiting for it", "error", err)
		default:
			g.log.Error("rebuilding the lost cache failed, will retry", "backoff", wait.String(), "error", err)
		}
		return false
	})
}
