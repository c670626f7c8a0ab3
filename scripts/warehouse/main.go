// Command warehouse is the stand-in for the warehouse systems in front of the
// source database: it applies the schema (migrate), loads demo data (seed) and
// generates a realistic write load through the SQL write API (simulate), and
// runs the reservation expiry sweep production needs (sweep). `make run` uses
// it. main only wires: the logic lives in internal/inventorydb,
// scripts/warehouse/simulate and scripts/warehouse/sweep.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/flagenv"
	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/metricshttp"
	"github.com/stockpipe/stock/internal/redact"
	"github.com/stockpipe/stock/scripts/warehouse/simulate"
	"github.com/stockpipe/stock/scripts/warehouse/sweep"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "warehouse:", err)
		os.Exit(1)
	}
}

const defaultPGURL = "postgres://stock:stock@127.0.0.1:5432/stock?sslmode=disable"

// cli is the program's configuration: global flags and one struct per
// subcommand. Every flag can also come from the environment variable named
// in its env tag.
type cli struct {
	PGURL    string `name:"pg-url" env:"STOCK_PG_URL" default:"${default_pg_url}" help:"Source PostgreSQL URL."`
	LogLevel string `name:"log-level" env:"STOCK_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level (${enum})."`

	Migrate  migrateCmd  `cmd:"" help:"Apply the schema migrations (idempotent, safe to run concurrently)."`
	Seed     seedCmd     `cmd:"" help:"Apply migrations, then idempotently create demo products, warehouses and stock."`
	Simulate simulateCmd `cmd:"" help:"Generate warehouse write load through the SQL write API."`
	Sweep    sweepCmd    `cmd:"" help:"Expire overdue reservations (stock_expire) at an interval until stopped, with Prometheus metrics."`
}

// Validate is called by kong after parsing; it joins every problem.
func (c *cli) Validate() error {
	var errs []error
	if c.PGURL == "" {
		errs = append(errs, errors.New("pg-url must not be empty"))
	}
	return errors.Join(errs...)
}

type migrateCmd struct{}

type seedCmd struct {
	Products   int `env:"STOCK_PRODUCTS" default:"10000" help:"Products SKU-000001.. to create."`
	Warehouses int `env:"STOCK_WAREHOUSES" default:"20" help:"Warehouses WH-01.. to create."`
}

func (c *seedCmd) Validate() error {
	var errs []error
	if c.Products < 1 || c.Products > inventorydb.MaxSeedProducts {
		errs = append(errs, fmt.Errorf("products must be in 1..%d, got %d", inventorydb.MaxSeedProducts, c.Products))
	}
	if c.Warehouses < 1 || c.Warehouses > inventorydb.MaxSeedWarehouses {
		errs = append(errs, fmt.Errorf("warehouses must be in 1..%d, got %d", inventorydb.MaxSeedWarehouses, c.Warehouses))
	}
	return errors.Join(errs...)
}

type simulateCmd struct {
	Rate           float64       `env:"STOCK_SIM_RATE" default:"200" help:"Write calls per second."`
	Duration       time.Duration `env:"STOCK_SIM_DURATION" default:"0s" help:"How long to run; 0 runs until interrupted."`
	Products       int           `env:"STOCK_PRODUCTS" default:"10000" help:"Products to draw from (must be seeded)."`
	Warehouses     int           `env:"STOCK_WAREHOUSES" default:"20" help:"Warehouses to draw from (must be seeded)."`
	Workers        int           `env:"STOCK_SIM_WORKERS" default:"8" help:"Concurrent callers."`
	ZipfS          float64       `name:"zipf-s" env:"STOCK_SIM_ZIPF_S" default:"1.1" help:"Product skew (> 1; higher is hotter)."`
	ReservationTTL time.Duration `env:"STOCK_SIM_RESERVATION_TTL" default:"15m" help:"TTL of reservations that will be resolved."`
	Seed           uint64        `env:"STOCK_SIM_SEED" default:"0" help:"Random seed; 0 picks one."`
	TxMaxCalls     int           `name:"tx-max-calls" env:"STOCK_SIM_TX_MAX_CALLS" default:"1" help:"Write calls per source transaction, drawn from 1..N (1: each call its own transaction)."`
	NoSweep        bool          `name:"no-sweep" env:"STOCK_SIM_NO_SWEEP" help:"Leave abandoned reservations to a separate 'warehouse sweep' process instead of sweeping them here."`
}

func (c *simulateCmd) config() simulate.Config {
	return simulate.Config{
		Rate: c.Rate, Duration: c.Duration, Products: c.Products, Warehouses: c.Warehouses,
		Workers: c.Workers, ZipfS: c.ZipfS, ReservationTTL: c.ReservationTTL, Seed: c.Seed,
		TxMaxCalls: c.TxMaxCalls, NoSweep: c.NoSweep,
	}
}

type sweepCmd struct {
	Every       time.Duration `name:"every" env:"STOCK_SWEEP_EVERY" default:"1s" help:"Time between sweeps: the longest an expired reservation keeps its stock while the sweeper keeps up."`
	Limit       int           `name:"limit" env:"STOCK_SWEEP_LIMIT" default:"1000" help:"Reservations expired per stock_expire call (one source transaction); a sweep calls again while calls come back full."`
	Timeout     time.Duration `name:"timeout" env:"STOCK_SWEEP_TIMEOUT" default:"10s" help:"Bound of one stock_expire call."`
	MetricsAddr string        `name:"metrics-addr" env:"STOCK_SWEEP_METRICS_ADDR" default:"127.0.0.1:9103" help:"Address of the /metrics endpoint (empty: none)."`
}

func (c *sweepCmd) config() sweep.Config {
	return sweep.Config{Every: c.Every, Limit: c.Limit, Timeout: c.Timeout}
}

func (c *sweepCmd) Validate() error { return c.config().Validate() }

func (c *simulateCmd) Validate() error { return c.config().Validate() }

// run parses args (and the environment through getenv) and runs the chosen
// subcommand until it finishes or ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c cli
	kctx, err := flagenv.Parse(&c, args, getenv, stdout,
		kong.Name("warehouse"),
		kong.Description("Migrate, seed and simulate the stock source database."),
		kong.Vars{"default_pg_url": defaultPGURL},
	)
	if err != nil || kctx == nil { // nil, nil after --help
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("parsing log level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("starting", "command", kctx.Command(), "pg_url", redact.URL(c.PGURL), "log_level", c.LogLevel)

	db, err := inventorydb.OpenPool(ctx, inventorydb.PoolConfig{
		URL:             c.PGURL,
		MaxConns:        int32(c.Simulate.Workers + 2), // workers + sweeper + spare
		ApplicationName: "warehouse-" + kctx.Selected().Name,
	})
	if err != nil {
		return err
	}
	defer db.Close()

	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.BindTo(db, (*inventorydb.Querier)(nil))
	kctx.BindTo(db, (*inventorydb.Beginner)(nil))
	return kctx.Run(log)
}

func (migrateCmd) Run(ctx context.Context, log *slog.Logger, db inventorydb.Beginner, q inventorydb.Querier) error {
	start := time.Now()
	if err := inventorydb.Migrate(ctx, db); err != nil {
		return err
	}
	v, err := inventorydb.SchemaVersion(ctx, q)
	if err != nil {
		return err
	}
	log.Info("schema migrated", "schema_version", v, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

func (c *seedCmd) Run(ctx context.Context, log *slog.Logger, db inventorydb.Beginner, q inventorydb.Querier) error {
	if err := (migrateCmd{}).Run(ctx, log, db, q); err != nil {
		return err
	}
	log.Info("seeding", "products", c.Products, "warehouses", c.Warehouses)
	start := time.Now()
	if err := inventorydb.Seed(ctx, q, c.Products, c.Warehouses); err != nil {
		return err
	}
	took := time.Since(start)
	var rows int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM inventory_levels").Scan(&rows); err != nil {
		return fmt.Errorf("counting inventory rows: %w", err)
	}
	log.Info("seeded", "products", c.Products, "warehouses", c.Warehouses,
		"inventory_rows_total", rows, "duration_ms", took.Milliseconds())
	return nil
}

func (c *simulateCmd) Run(ctx context.Context, log *slog.Logger, q inventorydb.Querier) error {
	v, err := inventorydb.SchemaVersion(ctx, q)
	if err != nil {
		return err
	}
	if v < inventorydb.LatestVersion() {
		return fmt.Errorf("schema at version %d, want %d: run `warehouse seed` first", v, inventorydb.LatestVersion())
	}
	sim, err := simulate.New(c.config(), q, log)
	if err != nil {
		return err
	}
	return sim.Run(ctx)
}

func (c *sweepCmd) Run(ctx context.Context, log *slog.Logger, q inventorydb.Querier) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sw, err := sweep.New(c.config(), q, log, reg)
	if err != nil {
		return err
	}
	log.Info("sweeping", "every", c.Every.String(), "limit", c.Limit, "timeout", c.Timeout.String(), "metrics_addr", c.MetricsAddr)
	g, gctx := errgroup.WithContext(ctx)
	if c.MetricsAddr != "" {
		// Listen before serving so that a taken port fails the start.
		ln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listening for metrics on %s: %w", c.MetricsAddr, err)
		}
		metricshttp.Serve(gctx, g, nil, ln, reg, log)
	}
	g.Go(func() error { return sw.Run(gctx) })
	err = g.Wait()
	log.Info("sweeper stopped", "error", err)
	return err
}
