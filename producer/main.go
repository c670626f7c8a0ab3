// Command producer captures inventory_levels from PostgreSQL through logical
// replication and writes stock.levels.v1, stock.changes.v1 and
// stock.alerts.v1 to Kafka, exactly once. This file only wires: config,
// logger, metrics, signals; the pipeline and its restarts live in
// producer/cdc.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/producer/cdc"
	"github.com/stockpipe/stock/producer/status"
)

// statusTimeout bounds "producer status": an operator at a terminal wants
// an answer, or to know that a service does not give one.
const statusTimeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

// run wires the producer and blocks until ctx is done or the pipeline fails
// for good; the one-shot commands return when done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	switch cfg.command {
	case "resnapshot":
		pos, err := cdc.RequestResnapshot(ctx, cfg.PostgresURL, cfg.Resnapshot.Products)
		if err != nil {
			return err
		}
		log.Info("resnapshot requested; the producer writes it when the stream reaches it", "lsn", pos, "products", len(cfg.Resnapshot.Products))
		return nil
	case "status":
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		return status.Print(sctx, cfg.status(), stdout)
	}

	pcfg := cfg.pipeline()
	log.Info("producer starting", "config", redacted(pcfg))
	raiseMemoryLimit := tuneMemory(log, cfg.MemoryLimitMiB, pcfg.StateOffHeapMiB())

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	kmetrics := kprom.NewMetrics("stock_producer_kafka", kprom.Registerer(reg))
	pipe, err := cdc.New(pcfg, log, cdc.NewMetrics(reg), kgo.WithHooks(kmetrics))
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	gctx, stopAll := context.WithCancel(gctx)
	g.Go(func() error {
		defer stopAll() // the pipeline is the program: the rest stops with it
		return pipe.Supervise(gctx)
	})
	if raiseMemoryLimit != nil {
		g.Go(func() error { return raiseMemoryLimit(gctx) })
	}
	if cfg.MetricsAddr != "" {
		serveMetrics(gctx, g, cfg.MetricsAddr, reg, log)
	}
	return g.Wait()
}

// serveMetrics serves /metrics and the profiles on addr in g until ctx is
// done. A listener that fails is logged, not fatal: the pipeline matters
// more than its metrics.
func serveMetrics(ctx context.Context, g *errgroup.Group, addr string, reg *prometheus.Registry, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Profiles on the metrics listener (loopback by default): profile
	// before optimising.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
}
