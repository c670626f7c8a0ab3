// Package rebuild replays the levels topic into a new generation of the
// Redis cache while the active one keeps serving, then switches to it
// ("projector rebuild"), and rebuilds a cache Redis lost under a running
// projection (Guard). The Kafka side is its own: which offsets, the replay,
// catching up with the live projector. The generation switch is not: it
// runs through one stockstore.Rebuild session, which owns the protocol.
//
// It reads the topic outside any consumer group and commits nothing; it
// must never know about PostgreSQL or HTTP serving.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/stockpipe/stock/internal/stockstore"
)

// Stats sums up a finished rebuild.
type Stats struct {
	Generation, Previous int64
	Records              int64
	Applied              int64
	Duration             time.Duration
	// Switched is when the new generation became active, from the start.
	Switched time.Duration
}

// Run replays the topic into a new generation of store while the active
// one keeps serving, catches up with what the live projector applied
// meanwhile (the last of it with live writes going to both generations,
// stockstore.Rebuild.Mirror), switches the active generation to it, waits
// RetireDelay for readers, and deletes the old generation. One rebuild runs
// at a time per key prefix (stockstore.ErrRebuildRunning otherwise).
func Run(ctx context.Context, cfg Config, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer) (Stats, error) {
	return run(ctx, cfg, store, log, reg, false)
}

// Lost rebuilds a cache that lost its active generation (Redis flushed or
// restarted without persistence; on a Cluster also pointer copies left
// split by a crashed rebuild): like Run from the start of the topic, but
// first it deletes whatever data survived in any generation, since nothing
// serves from it now. done is false when, once it held the rebuild lock, a
// generation was active again (another process rebuilt): then it changed
// nothing. stockstore.ErrRebuildRunning while another rebuild runs.
func Lost(ctx context.Context, cfg Config, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer) (st Stats, done bool, err error) {
	cfg.FromOffsets, cfg.FromTime = nil, time.Time{}
	st, err = run(ctx, cfg, store, log, reg, true)
	if errors.Is(err, stockstore.ErrGenerationActive) {
		return st, false, nil
	}
	return st, err == nil, err
}

func run(ctx context.Context, cfg Config, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer, lost bool) (Stats, error) {
	var st Stats
	if err := cfg.Validate(); err != nil {
		return st, fmt.Errorf("configuring rebuild: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return st, fmt.Errorf("registering rebuild metrics: %w", err)
	}
	start := time.Now()
	begin := store.BeginRebuild
	if lost {
		begin = store.BeginLostRebuild
	}
	// The session's context ends if the rebuild lock is lost: another may
	// be rebuilding, or Redis lost what this one wrote, and the replay
	// stops.
	rb, ctx, err := begin(ctx, log.With("topic", cfg.Topic))
	if err != nil {
		return st, err
	}
	defer rb.Close(ctx)
	st.Generation = rb.Generation()
	log = log.With("generation", st.Generation, "topic", cfg.Topic)

	kopts, err := cfg.Kafka.Opts()
	if err != nil {
		return st, err
	}
	cl, err := kgo.NewClient(append(kopts,
		kgo.ClientID(cfg.ClientID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records tell when a partition reached its last stable
		// offset when a transaction marker ends it.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.WithLogger(kslog.New(log)),
	)...)
	if err != nil {
		return st, fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	starts, err := startOffsets(ctx, adm, cfg)
	if err != nil {
		return st, err
	}
	ends, err := stableOffsets(ctx, adm, cfg.Topic)
	if err != nil {
		return st, err
	}
	todo := behind(starts, ends)
	m.total.Set(float64(todo))
	defer m.total.Set(0)
	defer m.rate.Set(0)
	log.Info("rebuild started", "partitions", len(ends), "records", todo, "from", fmtOffsets(starts))

	offsets := map[string]map[int32]kgo.Offset{cfg.Topic: {}}
	for p, o := range starts {
		offsets[cfg.Topic][p] = kgo.NewOffset().At(o)
	}
	cl.AddConsumePartitions(offsets)

	r := &replay{cfg: cfg, cl: cl, store: rb.Store(), log: log, m: m, next: maps.Clone(starts), todo: todo, start: start}
	if err := r.until(ctx, ends); err != nil {
		return st, err
	}
	// While the replay ran, the live projector applied newer records to
	// the generation readers see; switching now would show those products
	// older (or missing, or deleted ones back). So catch up in rounds that
	// shrink to what arrived during the round before, until what is left
	// is small, then have every live write go to the new generation too
	// (Mirror) and replay what the topic held at that moment: after that
	// the new generation has everything the active one has, and stays so.
	for round := 1; round <= maxCatchUpRounds; round++ {
		more, err := stableOffsets(ctx, adm, cfg.Topic)
		if err != nil {
			return st, err
		}
		gap := behind(r.next, more)
		if gap <= switchGap {
			break
		}
		log.Info("catching up before the switch", "round", round, "records", gap)
		if err := r.until(ctx, more); err != nil {
			return st, err
		}
	}
	if err := rb.Mirror(ctx); err != nil {
		return st, err
	}
	// Every record the live projector applied before Mirror is below these
	// offsets (it reads only committed records, and the stable offset only
	// grows); every one after reached the new generation as well.
	last, err := stableOffsets(ctx, adm, cfg.Topic)
	if err != nil {
		return st, err
	}
	if err := r.until(ctx, last); err != nil {
		return st, err
	}
	prev, err := rb.Switch(ctx)
	if err != nil {
		return st, err
	}
	st.Previous, st.Switched = prev, time.Since(start)
	log.Info("switched active generation", "previous", prev, "elapsed", st.Switched.String())
	// Nothing is missing from the new generation now: the live projector
	// applied to it whatever came after last, and goes on. No replay after
	// the switch.
	st.Records, st.Applied = r.records.Load(), r.applied.Load()
	if err := rb.Retire(ctx, cfg.RetireDelay); err != nil {
		return st, err
	}
	st.Duration = time.Since(start)
	log.Info("rebuild done", "records", st.Records, "applied", st.Applied, "elapsed", st.Duration.String(),
		"switched_after", st.Switched.String())
	return st, nil
}

// Catch-up before the switch: rounds end once at most switchGap records
// are left to replay (a few milliseconds of applying, during which live
// writes go to both generations), or after maxCatchUpRounds when the
// topic grows as fast as it is replayed.
const (
	switchGap        = 100
	maxCatchUpRounds = 10
)
