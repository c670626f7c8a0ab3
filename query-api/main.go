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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

func main() {
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
	rdb := stockstore.NewClient(cfg.redis())
	defer rdb.Close()
	store, err := stockstore.New(rdb, cfg.RedisPrefix)
	if err != nil {
		return err
	}
	handler := api.NewServer(api.Deps{
		Store:          store,
		Log:            log,
		Registerer:     reg,
		Gatherer:       reg,
		StoreTimeout:   cfg.RedisTimeout,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		CacheMaxAge:    cfg.CacheMaxAge,
		MaxLag:         cfg.MaxLag,
		WatermarkTopic: cfg.LevelsTopic,
		PublicCap:      cfg.PublicCap,
		APIKeys:        cfg.APIKeys,
		RateLimit:      cfg.RateLimit,
		RateBurst:      cfg.RateBurst,
		LogRequests:    cfg.LogRequests,
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

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// A fresh context: the program's is already done.
		shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("draining requests: %w", err)
		}
		return nil
	})
	err = g.Wait()
	log.Info("query-api stopped", "error", err)
	return err
}
