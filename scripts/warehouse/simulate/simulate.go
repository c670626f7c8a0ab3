// Package simulate provides the warehouse load generator: a paced stream of
// stock writes through the inventorydb write API with a realistic mix (mostly
// reservations that are later committed or released, some receipts,
// adjustments, counts and transfers, abandoned carts left to the expiry
// sweeper), hot products chosen Zipf-skewed. Refusals (insufficient stock)
// are counted like any other outcome.
//
// It must never write the tables directly: every change it makes is one the
// pipeline sees as a warehouse service would make it.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/periodic"
)

// Config is the simulator's typed configuration.
type Config struct {
	Rate        float64       // write calls per second, across all workers
	Duration    time.Duration // 0 runs until the context ends
	Products    int           // product ids SKU-000001..; must be seeded
	Warehouses  int           // warehouse ids WH-01..; must be seeded
	Workers     int           // concurrent callers; 0 means 8
	ZipfS       float64       // product skew, > 1; 0 means 1.1
	ExpireEvery time.Duration // stock_expire sweep period; 0 means 1s
	// NoSweep leaves the abandoned reservations to a separate sweeper
	// (warehouse sweep, as make run starts it). Both sweeping at once is
	// safe (stock_expire skips locked rows and takes only active ones), but
	// the sweeper's metrics would miss what the simulator expired.
	NoSweep     bool
	ReportEvery time.Duration // progress log period; 0 means 10s
	// ReservationTTL is the TTL of reservations the simulator means to
	// resolve; 0 means 15m. Abandoned ones get 5..30s so the sweeper has work.
	ReservationTTL time.Duration
	// HoldMax bounds how long a reservation is held before it is committed or
	// released; 0 means 8s.
	HoldMax time.Duration
	Seed    uint64 // 0 picks one from the clock
	// TxMaxCalls groups write calls into source transactions of 1 to
	// TxMaxCalls calls (uniformly drawn), as a warehouse service batching its
	// writes does; each call runs under a savepoint, so a refusal undoes it
	// alone. 0 or 1 makes every call its own transaction. Rate still counts
	// calls. Grouping needs a Querier that also begins transactions (a pool).
	TxMaxCalls int
	// OnWrite, when set, hears of every successful write call once its
	// transaction has committed (expiry sweeps excepted), on the worker's
	// goroutine: it must not block.
	OnWrite func(Write)
}

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = 8
	}
	if c.ZipfS == 0 {
		c.ZipfS = 1.1
	}
	if c.ExpireEvery == 0 {
		c.ExpireEvery = time.Second
	}
	if c.ReportEvery == 0 {
		c.ReportEvery = 10 * time.Second
	}
	if c.ReservationTTL == 0 {
		c.ReservationTTL = inventorydb.DefaultReservationTTL
	}
	if c.HoldMax == 0 {
		c.HoldMax = 8 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Rate <= 0 {
		errs = append(errs, fmt.Errorf("rate must be > 0, got %v", c.Rate))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration must be >= 0, got %v", c.Duration))
	}
	if c.Products < 1 || c.Products > inventorydb.MaxSeedProducts {
		errs = append(errs, fmt.Errorf("products must be in 1..%d, got %d", inventorydb.MaxSeedProducts, c.Products))
	}
	if c.Warehouses < 2 || c.Warehouses > inventorydb.MaxSeedWarehouses {
		errs = append(errs, fmt.Errorf("warehouses must be in 2..%d (transfers need two), got %d",
			inventorydb.MaxSeedWarehouses, c.Warehouses))
	}
	if c.TxMaxCalls < 0 {
		errs = append(errs, fmt.Errorf("tx-max-calls must be >= 0, got %d", c.TxMaxCalls))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers must be >= 0, got %d", c.Workers))
	}
	if c.ZipfS != 0 && c.ZipfS <= 1 {
		errs = append(errs, fmt.Errorf("zipf-s must be > 1, got %v", c.ZipfS))
	}
	for name, d := range map[string]time.Duration{
		"expire-every": c.ExpireEvery, "report-every": c.ReportEvery,
		"reservation-ttl": c.ReservationTTL, "hold-max": c.HoldMax,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must be >= 0, got %v", name, d))
		}
	}
	return errors.Join(errs...)
}

// opTimeout bounds one write call; in-flight calls finish under it after the
// run context ends, on a context of their own.
const opTimeout = 5 * time.Second

// Simulator generates the load. The Querier must be safe for concurrent use
// (a *pgxpool.Pool).
type Simulator struct {
	cfg      Config
	db       inventorydb.Querier
	beginner inventorydb.Beginner // db, when it begins transactions; needed by TxMaxCalls > 1
	log      *slog.Logger
	runID    string
	hot      []int // product index by Zipf rank: hot products spread over the range

	seq     atomic.Int64
	stats   stats
	pending pending
}

// New validates cfg and returns a simulator.
func New(cfg Config, db inventorydb.Querier, log *slog.Logger) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating simulate config: %w", err)
	}
	cfg.setDefaults()
	beginner, _ := db.(inventorydb.Beginner)
	if cfg.TxMaxCalls > 1 && beginner == nil {
		return nil, errors.New("validating simulate config: tx-max-calls > 1 needs a database handle that begins transactions")
	}
	// A fixed seed: the same products are best sellers in every run.
	bestSellers := rand.New(rand.NewPCG(0x5eed, 0x5eed))
	return &Simulator{
		cfg:      cfg,
		db:       db,
		beginner: beginner,
		log:      log,
		// Not from the seed: two runs with the same --seed must still not
		// reuse reservation ids.
		runID: fmt.Sprintf("%08x", rand.Uint32()),
		hot:   bestSellers.Perm(cfg.Products),
	}, nil
}

// Totals returns what the run has done so far, by kind.
func (s *Simulator) Totals() map[string]Counts { return s.stats.snapshot() }

// Behind returns how many calls the pace could not place so far because no
// worker was free: the source database was saturated.
func (s *Simulator) Behind() int64 { return s.stats.behind() }

// Run paces write calls until the context ends or the configured duration
// passes, then lets in-flight calls finish and logs the totals. It returns
// nil on a normal stop; per-call failures are counted, not returned.
func (s *Simulator) Run(ctx context.Context) error {
	if s.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.Duration)
		defer cancel()
	}
	s.log.Info("simulating warehouse load", "run_id", s.runID, "rate", s.cfg.Rate,
		"workers", s.cfg.Workers, "products", s.cfg.Products, "warehouses", s.cfg.Warehouses,
		"duration", s.cfg.Duration.String(), "tx_max_calls", max(s.cfg.TxMaxCalls, 1), "seed", s.cfg.Seed, "sweep", !s.cfg.NoSweep)
	start := time.Now()

	// About 100 ms of calls (at least one per worker): a tick no worker is
	// free to take within that slack is dropped and counted as behind, so a
	// slow database lowers the rate instead of building a backlog.
	ticks := make(chan struct{}, max(s.cfg.Workers, int(s.cfg.Rate/10)))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.pace(gctx, ticks); return nil })
	for w := range s.cfg.Workers {
		g.Go(func() error {
			s.work(gctx, ticks, s.cfg.Seed+uint64(w)+1)
			return nil
		})
	}
	if !s.cfg.NoSweep {
		g.Go(func() error { return s.sweep(gctx) })
	}
	g.Go(func() error { return s.report(gctx) })
	err := g.Wait()

	elapsed := time.Since(start)
	total := s.stats.snapshot()
	var calls int64
	for _, c := range total {
		calls += c.OK + c.Refused + c.Failed
	}
	s.log.Info("simulation stopped", "elapsed_s", round(elapsed.Seconds()), "calls", calls,
		"calls_per_s", round(float64(calls)/elapsed.Seconds()), "behind", s.stats.behind(),
		"grouped_txs", s.stats.txs(), "grouped_txs_failed", s.stats.txsFailed(),
		"open_reservations", s.pending.len(), countsAttr(total))
	return err
}

// pace emits Rate ticks per second on average, catching up in bursts after a
// stall of the timer rather than drifting.
func (s *Simulator) pace(ctx context.Context, ticks chan<- struct{}) {
	defer close(ticks)
	period := max(time.Duration(float64(time.Second)/s.cfg.Rate), time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds() * s.cfg.Rate)
			for ; sent < due; sent++ {
				select {
				case ticks <- struct{}{}:
				default:
					s.stats.addBehind()
				}
			}
		}
	}
}

func (s *Simulator) work(ctx context.Context, ticks <-chan struct{}, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x776f726b))
	zipf := rand.NewZipf(rng, s.cfg.ZipfS, 1, uint64(s.cfg.Products-1))
	for range ticks {
		if ctx.Err() != nil {
			return // ticks still buffered after the stop are not work
		}
		n := 1
		if s.cfg.TxMaxCalls > 1 {
			n = 1 + rng.IntN(s.cfg.TxMaxCalls)
			n = 1 + gather(ctx, ticks, n-1)
		}
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
		if n == 1 {
			s.step(opCtx, rng, zipf)
		} else {
			calls := make([]call, n)
			for i := range calls {
				calls[i] = s.draw(rng, zipf)
			}
			s.group(opCtx, calls)
		}
		cancel()
	}
}

// gatherWait bounds how long a worker waits for the further ticks of a
// grouped transaction; at low rates transactions come out smaller instead
// of the pace stalling.
const gatherWait = 20 * time.Millisecond

// gather takes up to n more ticks, waiting at most gatherWait, and returns
// how many it took.
func gather(ctx context.Context, ticks <-chan struct{}, n int) int {
	if n <= 0 {
		return 0
	}
	timer := time.NewTimer(gatherWait)
	defer timer.Stop()
	for got := 0; ; got++ {
		if got == n {
			return got
		}
		select {
		case _, ok := <-ticks:
			if !ok {
				return got
			}
		case <-timer.C:
			return got
		case <-ctx.Done():
			return got
		}
	}
}

func (s *Simulator) sweep(ctx context.Context) error {
	return periodic.Loop{Every: s.cfg.ExpireEvery}.Run(ctx, func(ctx context.Context) {
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
		n, err := inventorydb.Expire(opCtx, s.db, time.Time{}, 1000)
		cancel()
		if err != nil {
			s.stats.record(kindExpire, err)
			return
		}
		s.stats.addOK(kindExpire, int64(n)) // expire counts reservations expired, not sweeps
	})
}

func (s *Simulator) report(ctx context.Context) error {
	last := s.stats.snapshot()
	lastAt := time.Now()
	return periodic.Loop{Every: s.cfg.ReportEvery}.Run(ctx, func(context.Context) {
		now := time.Now()
		cur := s.stats.snapshot()
		delta := diff(cur, last)
		var calls int64
		for k, c := range delta {
			if k != kindExpire {
				calls += c.OK + c.Refused + c.Failed
			}
		}
		secs := now.Sub(lastAt).Seconds()
		s.log.Info("simulate progress", "interval_s", round(secs), "calls", calls,
			"calls_per_s", round(float64(calls)/secs), "behind", s.stats.behind(),
			"open_reservations", s.pending.len(), countsAttr(delta), "last_error", s.stats.lastError())
		last, lastAt = cur, now
	})
}

func round(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// pending holds the reservations this run means to resolve, by due time.
type pending struct {
	mu    sync.Mutex
	items []hold // kept in due order: holds are short and pushed in roughly due order
}

type hold struct {
	id                 string
	product, warehouse string // the row it holds stock of
	due                time.Time
	commit             bool
}

func (p *pending) push(h hold) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := len(p.items)
	for i > 0 && p.items[i-1].due.After(h.due) {
		i--
	}
	p.items = append(p.items, hold{})
	copy(p.items[i+1:], p.items[i:])
	p.items[i] = h
}

func (p *pending) popDue(now time.Time) (hold, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.items) == 0 || p.items[0].due.After(now) {
		return hold{}, false
	}
	h := p.items[0]
	p.items = p.items[1:]
	return h, true
}

func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.items)
}
