// Package sweep provides the reservation expiry sweep as a long-running job:
// at an interval it calls stock_expire, the write API's sweep, until no
// overdue reservation is left, and reports what it did and what is left as
// Prometheus metrics.
//
// It must never write the tables directly: every expiry is a stamped,
// versioned row write by stock_expire, which CDC streams like any other. It
// is safe beside another sweeper (a second process, the simulator's own):
// stock_expire takes only active due reservations, locks them FOR UPDATE
// SKIP LOCKED and marks them expired in the same transaction, so no
// reservation is expired twice.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/periodic"
)

// Config configures a Sweeper.
type Config struct {
	// Every is the time between sweeps: how long an expired reservation
	// may keep its stock reserved, at most, while the sweeper keeps up.
	Every time.Duration
	// Limit bounds the reservations one stock_expire call (one source
	// transaction) expires; a sweep calls it again while it comes back full.
	Limit int
	// Timeout bounds one call.
	Timeout time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Every: time.Second, Limit: 1000, Timeout: 10 * time.Second}
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	var errs []error
	if c.Every <= 0 || c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("sweep interval and timeout must be positive, got %s and %s", c.Every, c.Timeout))
	}
	if c.Limit < 1 {
		errs = append(errs, fmt.Errorf("sweep limit must be at least 1, got %d", c.Limit))
	}
	return errors.Join(errs...)
}

// Sweeper runs the sweep.
type Sweeper struct {
	cfg Config
	db  inventorydb.Querier
	log *slog.Logger
	m   *metrics

	lastAt time.Time // when the previous sweep ended, for expired_per_second
}

// New returns a Sweeper over db with its metrics registered in reg.
func New(cfg Config, db inventorydb.Querier, log *slog.Logger, reg prometheus.Registerer) (*Sweeper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring sweeper: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("registering sweeper metrics: %w", err)
	}
	return &Sweeper{cfg: cfg, db: db, log: log, m: m}, nil
}

// Run sweeps at once, then every Every, until ctx ends; it returns nil then.
// A failed sweep is logged, counted and retried at the next tick: a
// database restart must not stop the process.
func (s *Sweeper) Run(ctx context.Context) error {
	return periodic.Loop{Every: s.cfg.Every, AtStart: true}.Run(ctx, func(ctx context.Context) {
		n, err := s.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("expiry sweep failed, will retry", "expired", n, "error", err)
		case n > 0:
			s.log.Info("expired reservations", "expired", n)
		}
	})
}

// Sweep expires every overdue reservation, Limit per call, then measures
// what is left. It returns how many it expired. A call in flight when ctx
// ends finishes under its own timeout: it is one transaction either way.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	start := time.Now()
	total := 0
	for {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
		n, err := inventorydb.Expire(cctx, s.db, time.Time{}, s.cfg.Limit) // the database's clock
		cancel()
		total += n
		s.m.expired.Add(float64(n))
		if err != nil {
			s.m.errors.Inc()
			return total, err
		}
		// A full call means more may be due: drain before sleeping, so a
		// backlog does not wait Every per Limit.
		if n < s.cfg.Limit || ctx.Err() != nil {
			break
		}
	}
	s.m.sweeps.Inc()
	s.m.duration.Observe(time.Since(start).Seconds())
	if !s.lastAt.IsZero() {
		s.m.rate.Set(float64(total) / time.Since(s.lastAt).Seconds())
	}
	s.lastAt = time.Now()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	count, oldest, err := inventorydb.Overdue(cctx, s.db)
	cancel()
	if err != nil {
		s.m.errors.Inc()
		return total, err
	}
	s.m.overdue.Set(float64(count))
	s.m.oldest.Set(oldest.Seconds())
	s.m.lastSuccess.SetToCurrentTime()
	return total, nil
}
