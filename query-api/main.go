// Command query-api serves product stock over HTTP from the Redis stock
// cache the projector maintains (query-api/api).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

func main() {
	// Every request allocates what it reads and writes (a bulk of 1,000 is
	// two copies of ~2 MB) and keeps none of it; at the default GOGC the
	// live heap is so small that the collector ran every few requests
	// (about a tenth of the CPU of bulk reads in profiles, make bench-api).
	// GOGC 400 trades a few megabytes for that CPU; an operator's GOGC (or
	// GOMEMLIMIT, for a container's memory bound) wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "query-api:", err)
		os.Exit(1)
	}
}

// run wires the API and serves until ctx is done, then drains in-flight
// requests under the shutdown timeout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil || cfg == nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.slogLevel()}))
	log.Info("starting query-api", cfg.logAttrs()...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	stockstore.SetLogger(log)
	store, closeRedis, err := cfg.Redis.Open(cfg.tuneRedis)
	if err != nil {
		return err
	}
	defer closeRedis()
	handler := api.NewServer(api.Deps{
		Store:            store,
		Log:              log,
		Registerer:       reg,
		Gatherer:         reg,
		StoreTimeout:     cfg.RedisTimeout,
		MaxBodyBytes:     cfg.MaxBodyBytes,
		CacheMaxAge:      cfg.CacheMaxAge,
		MaxLag:           cfg.MaxLag,
		WatermarkTopic:   cfg.LevelsTopic,
		PublicCap:        cfg.PublicCap,
		APIKeys:          cfg.APIKeys,
		RateLimit:        cfg.RateLimit,
		RateBurst:        cfg.RateBurst,
		AccessLog:        api.AccessLog(cfg.AccessLog),
		SlowRequest:      cfg.SlowRequest,
		AccessLogMaxRate: cfg.accessLogMaxRate(),
	})

	// Listen before serving so that a taken port fails the start.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving", "addr", ln.Addr().String())

	var pln net.Listener
	if cfg.PprofAddr != "" {
		if pln, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listening on %s: %w", cfg.PprofAddr, err)
		}
		log.Info("serving pprof", "addr", pln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	serve(gctx, g, srv, ln, cfg.ShutdownTimeout)
	if pln != nil {
		serve(gctx, g, &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 5 * time.Second}, pln, cfg.ShutdownTimeout)
	}
	err = g.Wait()
	log.Info("query-api stopped", "error", err)
	return err
}

// serve runs srv on ln in g until ctx is done, then drains it under
// timeout with a fresh context (ctx is already done by then).
func serve(ctx context.Context, g *errgroup.Group, srv *http.Server, ln net.Listener, timeout time.Duration) {
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving http on %s: %w", ln.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("draining requests on %s: %w", ln.Addr(), err)
		}
		return nil
	})
}

// pprofHandler serves Go's profiles on their own listener, so that they are
// never reachable through the API's address.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
