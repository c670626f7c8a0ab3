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

	consumer, err := consume.New(cfg.consume(), store, log, reg)
	if err != nil {
		return err
	}

	// Listen before serving so that a taken port fails the start.
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listening for metrics on %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving metrics", "addr", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := consumer.Run(gctx); err != nil {
			return fmt.Errorf("consuming: %w", err)
		}
		// A consumer that stops while the program still runs is an error.
		if ctx.Err() == nil {
			return errors.New("consumer stopped")
		}
		return nil
	})
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving metrics: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
	err = g.Wait()
	log.Info("projector stopped", "error", err)
	return err
}
