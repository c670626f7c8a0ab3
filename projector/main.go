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
		consumer, err := consume.New(cfg.consume(), store, log, reg)
		if err != nil {
			return err
		}
		job = func(gctx context.Context) error {
			if err := ensureGeneration(gctx, cfg, store, log, reg); err != nil {
				return err
			}
			go trimLoop(gctx, store, cfg.ChangesRetain, cfg.TrimInterval, log)
			go heartbeatLoop(gctx, store, cfg.Topic, log)
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

// ensureGeneration checks the sentinel at start: a Redis without the active
// generation pointer is new, or was flushed or restarted without
// persistence. With committed offsets in the group, the cache has lost what
// they cover, so it is rebuilt from the topic before consuming; without,
// a first generation is activated and the group replays from the start.
// Redis being down is not fatal here: the consumer retries.
func ensureGeneration(ctx context.Context, cfg *config, store *stockstore.Store, log *slog.Logger, reg prometheus.Registerer) error {
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
	if !committed {
		gen, created, err := store.InitGeneration(ctx)
		if err != nil {
			return err
		}
		log.Info("cache generation ready", "generation", gen, "created", created)
		return nil
	}
	log.Warn("redis holds no cache generation but the group has committed offsets (flushed or restarted without persistence): rebuilding from the topic")
	rc, err := cfg.rebuild()
	if err != nil {
		return err
	}
	rc.FromOffsets, rc.FromTime = nil, time.Time{}
	st, err := consume.Rebuild(ctx, rc, store, log, reg)
	switch {
	case errors.Is(err, stockstore.ErrRebuildRunning):
		// Another projector process rebuilds; this one projects meanwhile
		// (into the generation the rebuild retires, which it replays).
		log.Info("another process is rebuilding the cache", "error", err)
		return nil
	case err != nil:
		return fmt.Errorf("rebuilding the flushed cache: %w", err)
	}
	log.Info("cache rebuilt at start", "generation", st.Generation, "records", st.Records, "elapsed", st.Duration.String())
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
