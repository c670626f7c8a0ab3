// Command projector keeps the Redis stock cache equal to the compacted topic
// stock.levels.v1: it consumes the topic in a consumer group and applies
// each product's latest snapshot to Redis idempotently (projector/consume),
// committing offsets only after Redis acknowledged. This file only wires:
// config, logger, metrics, signals and the errgroup that owns every
// goroutine; the logic lives in projector/consume.
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/metricshttp"
	"github.com/stockpipe/stock/internal/redact"
	"github.com/stockpipe/stock/internal/redisconn"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/consume"
	"github.com/stockpipe/stock/projector/rebuild"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "projector:", redact.Text(err.Error()))
		os.Exit(1)
	}
}

// run wires the projector and blocks until ctx is done or a component fails
// (a rebuild ends by itself).
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	if isTool(cfg.command) {
		return runTool(ctx, cfg, stdout)
	}
	log := slog.New(redact.Handler(stdout, cfg.slogLevel()))
	log.Info("starting projector", cfg.logAttrs()...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	stockstore.SetLogger(log)
	store, closeRedis, err := cfg.Redis.Open(cfg.tuneRedis)
	if err != nil {
		return err
	}
	defer closeRedis()
	if err := store.WaitForReplicas(cfg.RedisWaitReplicas, cfg.RedisWaitTimeout); err != nil {
		return err
	}
	if err := checkServices(ctx, cfg, store, log); err != nil {
		return err
	}
	// Loading the scripts early only saves a round trip; Redis being down
	// at start is not fatal, the consumer retries.
	if err := store.LoadScripts(ctx); err != nil {
		log.Warn("redis not ready at start", "error", err)
	}

	var job func(ctx context.Context, g *errgroup.Group) error
	switch cfg.command {
	case "rebuild":
		rc, err := cfg.rebuild()
		if err != nil {
			return err
		}
		job = func(ctx context.Context, _ *errgroup.Group) error {
			_, err := rebuild.Run(ctx, rc, store, log, reg)
			return err
		}
	default:
		if job, err = project(ctx, cfg, store, log, reg); err != nil {
			return err
		}
	}

	// Listen before serving so that a taken port fails the start.
	var metrics net.Listener
	if cfg.MetricsAddr != "" {
		if metrics, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listening for metrics on %s: %w", cfg.MetricsAddr, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	done := make(chan struct{}) // closed when the job returned: a rebuild ends by itself
	g.Go(func() error {
		defer close(done)
		return job(gctx, g)
	})
	if metrics != nil {
		metricshttp.Serve(gctx, g, done, metrics, reg, log)
	}
	err = g.Wait()
	log.Info("projector stopped", "error", err)
	return err
}

// project is the live projector's job: a first cache generation, then the
// consumer, with its lost-cache guard, the change-index trim and the
// heartbeat beside it in the program's errgroup. They all end with the
// group's context, which ends when the consumer does: an error cancels it,
// and a consumer that stops while the program still runs (ctx) is one.
func project(ctx context.Context, cfg *config, store *stockstore.Store, log *slog.Logger, reg *prometheus.Registry) (func(context.Context, *errgroup.Group) error, error) {
	// The consumer writes only into an active generation: after a loss its
	// batches wait for the guard's rebuild.
	consumer, err := consume.New(cfg.consume(), store.RequireGeneration(), log, reg)
	if err != nil {
		return nil, err
	}
	gc, err := cfg.guard()
	if err != nil {
		return nil, err
	}
	guard, err := rebuild.NewGuard(gc, store, log, reg)
	if err != nil {
		return nil, err
	}
	return func(gctx context.Context, g *errgroup.Group) error {
		if err := consume.EnsureGeneration(gctx, cfg.consume(), store, log); err != nil {
			return err
		}
		g.Go(func() error { return guard.Run(gctx, consumer.CacheLost()) })
		g.Go(func() error { return consume.TrimChanges(gctx, store, cfg.ChangesRetain, cfg.TrimInterval, log) })
		g.Go(func() error { return consume.Heartbeat(gctx, store, cfg.Topic, log) })
		if err := consumer.Run(gctx); err != nil {
			return fmt.Errorf("consuming: %w", err)
		}
		if ctx.Err() == nil {
			return errors.New("consumer stopped")
		}
		return nil
	}, nil
}

// checkServices connects once to Kafka and Redis before anything starts,
// so that a configuration they refuse (a wrong password, TLS against a
// plaintext listener or the reverse, a certificate for another name) stops
// the projector at once with the setting to look at, instead of a consumer
// retrying for ever. A service that is only unreachable is logged and
// waited for, as before.
func checkServices(ctx context.Context, cfg *config, store *stockstore.Store, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := cfg.Kafka.Check(cctx); errors.Is(err, kafkaconn.ErrRefused) {
		return err
	} else if err != nil {
		log.Warn("kafka not reachable at start; retrying", "error", err)
	}
	if err := cfg.Redis.Check(cctx, store); errors.Is(err, redisconn.ErrRefused) {
		return err
	} else if err != nil {
		log.Warn("redis not reachable at start; retrying", "error", err)
	}
	return nil
}

// checkTimeout bounds the connection checks at start: a refusal comes at
// once; past this a service counts as not reachable yet.
const checkTimeout = 15 * time.Second
