package consume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/stockpipe/stock/internal/stockstore"
)

// RebuildConfig configures a rebuild: a replay of the topic, outside any
// consumer group, into a new generation of the cache.
type RebuildConfig struct {
	Brokers  []string
	Topic    string
	ClientID string

	// FromOffsets starts the listed partitions at these offsets (the others
	// at their start); FromTime starts every partition at the first record
	// at or after it. Neither: the start of the topic, the only choice that
	// rebuilds every product (the new generation holds only what is
	// replayed).
	FromOffsets map[int32]int64
	FromTime    time.Time

	// BatchSize bounds the records applied in one Redis round trip; Workers
	// is how many round trips run at once (order does not matter: the apply
	// script keeps the newest position whatever the order).
	BatchSize int
	Workers   int
	// ApplyTimeout bounds one round trip; RetryMin and RetryMax the backoff
	// between failed ones.
	ApplyTimeout time.Duration
	RetryMin     time.Duration
	RetryMax     time.Duration
	// Progress is the interval of the progress log line.
	Progress time.Duration
	// RetireDelay is how long the old generation stays after the switch,
	// for readers whose cached generation has not expired yet; at least
	// stockstore.RetireDelay.
	RetireDelay time.Duration
	// AcceptNonTransactional: as Config's.
	AcceptNonTransactional bool
}

// DefaultRebuildConfig returns the defaults; callers fill Brokers and Topic.
func DefaultRebuildConfig() RebuildConfig {
	return RebuildConfig{
		ClientID:     "stock-projector-rebuild",
		BatchSize:    1000,
		Workers:      4,
		ApplyTimeout: 10 * time.Second,
		RetryMin:     100 * time.Millisecond,
		RetryMax:     5 * time.Second,
		Progress:     time.Second,
		RetireDelay:  stockstore.RetireDelay,
	}
}

// Validate reports every problem of c.
func (c RebuildConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no kafka broker"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("no topic"))
	}
	if c.BatchSize < 1 || c.Workers < 1 {
		errs = append(errs, fmt.Errorf("batch size and workers must be at least 1, got %d and %d", c.BatchSize, c.Workers))
	}
	if len(c.FromOffsets) > 0 && !c.FromTime.IsZero() {
		errs = append(errs, errors.New("give offsets or a time to rebuild from, not both"))
	}
	if c.ApplyTimeout <= 0 || c.RetryMin <= 0 || c.RetryMax < c.RetryMin || c.Progress <= 0 {
		errs = append(errs, errors.New("apply timeout, retry bounds and progress interval must be positive (retry max >= min)"))
	}
	if c.RetireDelay < stockstore.RetireDelay {
		errs = append(errs, fmt.Errorf("retire delay must be at least %s, got %s", stockstore.RetireDelay, c.RetireDelay))
	}
	return errors.Join(errs...)
}

// RebuildStats sums up a finished rebuild.
type RebuildStats struct {
	Generation, Previous int64
	Records              int64
	Applied              int64
	Duration             time.Duration
	// Switched is when the new generation became active, from the start.
	Switched time.Duration
}

type rebuildMetrics struct {
	records prometheus.Counter
	total   prometheus.Gauge
	rate    prometheus.Gauge
}

func newRebuildMetrics(reg prometheus.Registerer) (*rebuildMetrics, error) {
	const ns, sub = "stock", "projector"
	m := &rebuildMetrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rebuild_records_total", Help: "Records replayed by cache rebuilds."}),
		total: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "rebuild_target_records", Help: "Records the running rebuild replays in all (0 when none runs)."}),
		rate: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "rebuild_records_per_second", Help: "Replay rate of the running rebuild."}),
	}
	// A projector may rebuild more than once (at start, then after a loss
	// while running): later rebuilds count on the collectors of the first.
	var err error
	if m.records, err = register(reg, m.records); err != nil {
		return nil, err
	}
	if m.total, err = register(reg, m.total); err != nil {
		return nil, err
	}
	if m.rate, err = register(reg, m.rate); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if prev, ok := are.ExistingCollector.(C); ok {
			return prev, nil
		}
	}
	return c, err
}

// Rebuild replays the topic into a new generation of store while the active
// one keeps serving, catches up with what the live projector applied
// meanwhile (the last of it with live writes going to both generations,
// Store.SetNext), switches the active generation to it, waits RetireDelay
// for readers, and deletes the old generation. One rebuild runs at a time
// per key prefix (ErrRebuildRunning otherwise).
func Rebuild(ctx context.Context, cfg RebuildConfig, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer) (RebuildStats, error) {
	return rebuild(ctx, cfg, store, log, reg, false)
}

// errCacheActive stops a rebuild after a loss that finds, once it holds the
// lock, a generation active again: another process has rebuilt meanwhile.
var errCacheActive = errors.New("a cache generation is active again")

// RebuildLost rebuilds a cache that lost its active generation (Redis
// flushed or restarted without persistence; on a Cluster also pointer
// copies left split by a crashed rebuild): like Rebuild from the start of
// the topic, but first it deletes whatever data survived in any generation,
// since nothing serves from it now. done is false when, once it held the
// rebuild lock, a generation was active again (another process rebuilt):
// then it changed nothing. ErrRebuildRunning while another rebuild runs.
func RebuildLost(ctx context.Context, cfg RebuildConfig, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer) (st RebuildStats, done bool, err error) {
	cfg.FromOffsets, cfg.FromTime = nil, time.Time{}
	st, err = rebuild(ctx, cfg, store, log, reg, true)
	if errors.Is(err, errCacheActive) {
		return st, false, nil
	}
	return st, err == nil, err
}

func rebuild(ctx context.Context, cfg RebuildConfig, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer, lost bool) (RebuildStats, error) {
	var st RebuildStats
	if err := cfg.Validate(); err != nil {
		return st, fmt.Errorf("configuring rebuild: %w", err)
	}
	m, err := newRebuildMetrics(reg)
	if err != nil {
		return st, fmt.Errorf("registering rebuild metrics: %w", err)
	}
	start := time.Now()
	owner := randomID()
	const lockTTL = 30 * time.Second
	unlock, err := store.LockRebuild(ctx, owner, lockTTL)
	if err != nil {
		return st, err
	}
	defer unlock(context.WithoutCancel(ctx))
	// A rebuild that lost its lock stops: another may be rebuilding, or
	// Redis lost what this one wrote, and switching to it would serve an
	// incomplete cache.
	ctx, abandon := context.WithCancelCause(ctx)
	defer abandon(nil)
	lockCtx, stopLock := context.WithCancel(ctx)
	defer stopLock()
	// The generation named next once SetNext ran, which the lock keeper
	// extends with the lock; mu keeps a keeper's extension from racing the
	// switch, which clears the pointer.
	var next struct {
		sync.Mutex
		gen int64
	}
	go func() {
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-lockCtx.Done():
				return
			case <-t.C:
				err := store.ExtendRebuildLock(lockCtx, owner, lockTTL)
				next.Lock()
				if err == nil && next.gen > 0 {
					err = store.ExtendNext(lockCtx, next.gen, lockTTL)
				}
				next.Unlock()
				switch {
				case errors.Is(err, stockstore.ErrRebuildLockLost), errors.Is(err, stockstore.ErrNextLost):
					log.Error("rebuild lock or next-generation pointer lost; stopping without switching", "error", err)
					abandon(err)
					return
				case err != nil:
					log.Warn("extending rebuild lock", "error", err)
				}
			}
		}
	}()

	if lost {
		// Under the lock no other rebuild can activate a generation; a
		// projector starting on an empty Redis without committed offsets
		// could, and that generation must not be cleared.
		ps, err := store.Pointer(ctx)
		if err != nil {
			return st, err
		}
		if ps == stockstore.PointerActive {
			return st, errCacheActive
		}
		n, err := store.DeleteAllGenerations(ctx)
		if err != nil {
			return st, err
		}
		log.Info("deleted what survived of the lost cache", "keys", n)
	}
	gen, err := store.NewGeneration(ctx)
	if err != nil {
		return st, err
	}
	st.Generation = gen
	target := store.InGeneration(gen)
	log = log.With("generation", gen, "topic", cfg.Topic)
	switched := false
	defer func() {
		if switched {
			return
		}
		// A rebuild that gave up leaves nothing behind: live writes stop
		// going to its generation, and what it wrote is deleted.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		// Only under the lock: after a flush the generation numbers start
		// over, and gen may now be another rebuild's.
		if err := store.ExtendRebuildLock(ctx, owner, lockTTL); err != nil {
			log.Warn("leaving the generation of a rebuild that gave up: the rebuild lock is not ours", "error", err)
			return
		}
		if err := store.ClearNext(ctx, gen); err != nil {
			log.Warn("clearing next generation of a rebuild that gave up", "error", err)
		}
		if n, err := store.DeleteGeneration(ctx, gen); err != nil {
			log.Warn("deleting the generation of a rebuild that gave up", "error", err)
		} else if n > 0 {
			log.Info("deleted the generation of a rebuild that gave up", "keys", n)
		}
	}()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records tell when a partition reached its last stable
		// offset when a transaction marker ends it.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.WithLogger(kslog.New(log)),
	)
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
	var todo int64
	for p, e := range ends {
		todo += max(e-starts[p], 0)
	}
	m.total.Set(float64(todo))
	defer m.total.Set(0)
	defer m.rate.Set(0)
	log.Info("rebuild started", "partitions", len(ends), "records", todo, "from", fmtOffsets(starts))

	offsets := map[string]map[int32]kgo.Offset{cfg.Topic: {}}
	for p, o := range starts {
		offsets[cfg.Topic][p] = kgo.NewOffset().At(o)
	}
	cl.AddConsumePartitions(offsets)

	r := &replay{cfg: cfg, cl: cl, store: target, log: log, m: m, next: maps.Clone(starts), todo: todo, start: start}
	if err := r.until(ctx, ends); err != nil {
		return st, err
	}
	// While the replay ran, the live projector applied newer records to
	// the generation readers see; switching now would show those products
	// older (or missing, or deleted ones back). So catch up in rounds that
	// shrink to what arrived during the round before, until what is left
	// is small, then have every live write go to the new generation too
	// (SetNext) and replay what the topic held at that moment: after that
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
	if err := store.SetNext(ctx, gen, lockTTL); err != nil {
		return st, err
	}
	next.Lock()
	next.gen = gen
	next.Unlock()
	// Every record the live projector applied before SetNext is below
	// these offsets (it reads only committed records, and the stable
	// offset only grows); every one after reached gen as well.
	last, err := stableOffsets(ctx, adm, cfg.Topic)
	if err != nil {
		return st, err
	}
	if err := r.until(ctx, last); err != nil {
		return st, err
	}
	if ctx.Err() != nil {
		return st, context.Cause(ctx) // the lock keeper's reason, if it gave up
	}
	if err := store.ExtendRebuildLock(ctx, owner, lockTTL); err != nil {
		return st, err
	}
	// Had the pointer expired or been lost, live writes may have missed
	// gen since: then no switch. Activate clears it, so the lock keeper
	// stops extending it first.
	if err := store.ExtendNext(ctx, gen, lockTTL); err != nil {
		return st, err
	}
	next.Lock()
	next.gen = 0
	next.Unlock()
	prev, err := store.Activate(ctx, gen)
	if err != nil {
		return st, err
	}
	switched = true
	st.Previous, st.Switched = prev, time.Since(start)
	log.Info("switched active generation", "previous", prev, "elapsed", st.Switched.String())
	// Nothing is missing from gen now: the live projector applied to it
	// whatever came after last, and goes on. No replay after the switch.
	st.Records, st.Applied = r.records.Load(), r.applied.Load()
	// After a loss the previous generation is 0, which nothing wrote into
	// (writes were refused, survivors deleted): there is nothing to retire.
	if prev != gen && !(lost && prev == 0) {
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(cfg.RetireDelay):
		}
		n, err := store.DeleteGeneration(ctx, prev)
		if err != nil {
			return st, err
		}
		log.Info("deleted old generation", "previous", prev, "keys", n)
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

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
