// Command projector keeps the Redis stock cache equal to the compacted topic
// stock.levels.v1: it consumes the topic in a consumer group and applies
// each product's latest snapshot to Redis idempotently (projector/consume),
// committing offsets only after Redis acknowledged.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/consume"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "projector:", err)
		os.Exit(1)
	}
}

// run wires the projector and blocks until ctx is done or a component fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	if isTool(cfg.command) {
		return runTool(ctx, cfg, stdout)
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.slogLevel()}))
	log.Info("starting projector", cfg.logAttrs()...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	stockstore.SetLogger(log)
	rdb := stockstore.NewClient(cfg.redis())
	defer rdb.Close()
	store, err := stockstore.New(rdb, cfg.RedisPrefix)
	if err != nil {
		return err
	}
	// Loading the scripts early only saves a round trip; Redis being down
	// at start is not fatal, the consumer retries.
	if err := store.LoadScripts(ctx); err != nil {
		log.Warn("redis not ready at start", "error", err)
	}

	var job func(ctx context.Context) error
	switch cfg.command {
	case "rebuild":
		rc, err := cfg.rebuild()
		if err != nil {
			return err
		}
		job = func(ctx context.Context) error {
			_, err := consume.Rebuild(ctx, rc, store, log, reg)
			return err
		}
	default:
		// The consumer writes only into an active generation: after a loss
		// its batches wait for the guard's rebuild.
		consumer, err := consume.New(cfg.consume(), store.RequireGeneration(), log, reg)
		if err != nil {
			return err
		}
		gc, err := cfg.guard()
		if err != nil {
			return err
		}
		guard, err := consume.NewGuard(gc, store, log, reg)
		if err != nil {
			return err
		}
		job = func(gctx context.Context) error {
			if err := ensureGeneration(gctx, cfg, store, log); err != nil {
				return err
			}
			go trimLoop(gctx, store, cfg.ChangesRetain, cfg.TrimInterval, log)
			go heartbeatLoop(gctx, store, cfg.Topic, log)
			guardDone := make(chan struct{})
			defer func() { <-guardDone }()
			guardCtx, stopGuard := context.WithCancel(gctx)
			defer stopGuard() // runs first: a consumer that failed stops the guard
			go func() {
				defer close(guardDone)
				_ = guard.Run(guardCtx, consumer.CacheLost())
			}()
			if err := consumer.Run(gctx); err != nil {
				return fmt.Errorf("consuming: %w", err)
			}
			// A consumer that stops while the program still runs is an error.
			if ctx.Err() == nil {
				return errors.New("consumer stopped")
			}
			return nil
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	done := make(chan struct{}) // closed when the job returned: a rebuild ends by itself
	g.Go(func() error {
		defer close(done)
		return job(gctx)
	})
	if cfg.MetricsAddr != "" {
		// Listen before serving so that a taken port fails the start.
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listening for metrics on %s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		log.Info("serving metrics", "addr", ln.Addr().String())
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving metrics: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			select {
			case <-gctx.Done():
			case <-done:
			}
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shutdownCtx)
		})
	}
	err = g.Wait()
	log.Info("projector stopped", "error", err)
	return err
}

// ensureGeneration activates a first generation on a Redis that never held
// one: no generation pointer while the group has no committed offsets (the
// group then replays the topic from its start). Without the pointer but with
// committed offsets, Redis lost the cache (flushed, or restarted without
// persistence): the guard rebuilds it from the topic as soon as it runs, as
// it does when that happens later. Redis being down is not fatal here: the
// consumer retries and the guard checks again.
func ensureGeneration(ctx context.Context, cfg *config, store *stockstore.Store, log *slog.Logger) error {
	ok, err := store.Initialized(ctx)
	if err != nil {
		log.Warn("cannot check the cache generation at start", "error", err)
		return nil
	}
	if ok {
		return nil
	}
	committed, err := consume.HasCommittedOffsets(ctx, cfg.Brokers, cfg.Group, cfg.Topic)
	if err != nil {
		return err
	}
	if committed {
		return nil
	}
	gen, created, err := store.InitGeneration(ctx)
	if err != nil {
		return err
	}
	log.Info("cache generation ready", "generation", gen, "created", created)
	return nil
}

// trimLoop keeps the change index to its retained window until ctx ends.
// heartbeatEvery is how often a consuming projector says it is alive; the
// heartbeat lives three times as long, so one missed beat is not an outage.
const heartbeatEvery = 5 * time.Second

// heartbeatLoop tells readers (the query API's /readyz) that a projector
// of topic is running, even while the source is quiet.
func heartbeatLoop(ctx context.Context, store *stockstore.Store, topic string, log *slog.Logger) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := store.Heartbeat(hctx, topic, 3*heartbeatEvery)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("writing heartbeat", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func trimLoop(ctx context.Context, store *stockstore.Store, keep int, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			n, err := store.TrimChanges(tctx, keep)
			cancel()
			if err != nil {
				log.Warn("trimming change index", "error", err)
			} else if n > 0 {
				log.Debug("trimmed change index", "removed", n)
			}
		}
	}
}
