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

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/redact"
	"github.com/stockpipe/stock/producer/cdc"
	"github.com/stockpipe/stock/producer/source"
	"github.com/stockpipe/stock/producer/status"
)

// statusTimeout bounds "producer status": an operator at a terminal wants
// an answer, or to know that a service does not give one.
const statusTimeout = 30 * time.Second

// checkTimeout bounds the connection checks at start: a refusal comes at
// once; past this a service counts as not reachable yet.
const checkTimeout = 15 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", redact.Text(err.Error()))
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
	log := slog.New(redact.Handler(stdout, cfg.LogLevel))
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
	if err := checkServices(ctx, pcfg, log); err != nil {
		return err
	}
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
	for addr, mux := range opsMuxes(cfg, reg) {
		serveOps(gctx, g, addr, mux, log)
	}
	return g.Wait()
}

// checkServices connects once to PostgreSQL and Kafka before anything
// starts, so that a configuration they refuse (a wrong password, TLS
// against a plaintext listener or the reverse, a certificate for another
// name) stops the producer at once with the setting to look at, instead
// of a pipeline restarting for ever. A service that is only unreachable is
// logged and waited for, as before.
func checkServices(ctx context.Context, pcfg cdc.Config, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := source.Check(cctx, pcfg.PostgresURL); errors.Is(err, source.ErrRefused) {
		return err
	} else if err != nil {
		log.Warn("postgres not reachable at start; the pipeline retries", "error", err)
	}
	if err := pcfg.Kafka.Check(cctx); errors.Is(err, kafkaconn.ErrRefused) {
		return err
	} else if err != nil {
		log.Warn("kafka not reachable at start; the pipeline retries", "error", err)
	}
	return nil
}

// opsMuxes are the operator endpoints by address: /metrics on
// --metrics-addr, the profiles on --pprof-addr (opt-in: they expose the
// process's memory and command line), both on one listener when the two
// addresses are the same.
func opsMuxes(cfg *config, reg *prometheus.Registry) map[string]*http.ServeMux {
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if cfg.MetricsAddr != "" {
		mux(cfg.MetricsAddr).Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	if cfg.PprofAddr != "" {
		m := mux(cfg.PprofAddr)
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
		m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return muxes
}

// serveOps serves mux on addr in g until ctx is done. A listener that
// fails is logged, not fatal: the pipeline matters more than its metrics.
func serveOps(ctx context.Context, g *errgroup.Group, addr string, mux *http.ServeMux, log *slog.Logger) {
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", addr, "error", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
}
