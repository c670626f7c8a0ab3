// Command query-api serves product stock over HTTP from the Redis stock
// cache the projector maintains (query-api/api).
package main

import (
	"context"
	"crypto/tls"
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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/redact"
	"github.com/stockpipe/stock/internal/redisconn"
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
		fmt.Fprintln(os.Stderr, "query-api:", redact.Text(err.Error()))
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
	log := slog.New(redact.Handler(stdout, cfg.slogLevel()))
	log.Info("starting query-api", cfg.logAttrs()...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	stockstore.SetLogger(log)
	store, closeRedis, err := cfg.Redis.Open(cfg.tuneRedis)
	if err != nil {
		return err
	}
	defer closeRedis()
	if err := checkRedis(ctx, cfg, store, log); err != nil {
		return err
	}
	keys, err := cfg.apiKeys() // checked by Validate
	if err != nil {
		return err
	}
	proxies, err := cfg.trustedProxies()
	if err != nil {
		return err
	}
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
		APIKeys:          keys,
		RequireAPIKey:    cfg.RequireAPIKey,
		RateLimit:        cfg.RateLimit,
		RateBurst:        cfg.RateBurst,
		RateLimitClients: cfg.RateLimitClients,
		TrustedProxies:   proxies,
		InternalMetrics:  cfg.MetricsAddr != "",
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
	if cfg.TLSCertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			_ = ln.Close() // nothing was served on it yet
			return fmt.Errorf("loading the API's certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	log.Info("serving", "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil)

	// The internal listeners: /metrics (--metrics-addr) and the profiles
	// (--pprof-addr), on one listener when the addresses are the same.
	internal := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if internal[addr] == nil {
			internal[addr] = http.NewServeMux()
		}
		return internal[addr]
	}
	if cfg.MetricsAddr != "" {
		mux(cfg.MetricsAddr).Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	if cfg.PprofAddr != "" {
		addPprof(mux(cfg.PprofAddr))
	}
	listeners := map[string]net.Listener{}
	for addr := range internal {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			_ = ln.Close() // nothing was served on it yet
			for _, l := range listeners {
				_ = l.Close()
			}
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		listeners[addr] = l
		log.Info("serving internal endpoints", "addr", l.Addr().String(), "metrics", addr == cfg.MetricsAddr, "pprof", addr == cfg.PprofAddr)
	}

	g, gctx := errgroup.WithContext(ctx)
	serve(gctx, g, srv, ln, cfg.ShutdownTimeout)
	for addr, l := range listeners {
		serve(gctx, g, &http.Server{Handler: internal[addr], ReadHeaderTimeout: 5 * time.Second}, l, cfg.ShutdownTimeout)
	}
	err = g.Wait()
	log.Info("query-api stopped", "error", err)
	return err
}

// serve runs srv on ln in g until ctx is done, then drains it under
// timeout with a fresh context (ctx is already done by then).
func serve(ctx context.Context, g *errgroup.Group, srv *http.Server, ln net.Listener, timeout time.Duration) {
	g.Go(func() error {
		serveOn := srv.Serve
		if srv.TLSConfig != nil {
			// The certificate is in TLSConfig; ServeTLS also offers HTTP/2.
			serveOn = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serveOn(ln); !errors.Is(err, http.ErrServerClosed) {
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

// checkRedis pings Redis once before serving, so that a configuration it
// refuses (a wrong user or password, TLS against a plaintext port or the
// reverse, a certificate for another name) stops the API at once with the
// setting to look at, instead of answering 503 for ever. A Redis that is
// only down is logged: the API starts and answers 503 until it is back.
func checkRedis(ctx context.Context, cfg *config, store *stockstore.Store, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cfg.Redis.Check(cctx, store); errors.Is(err, redisconn.ErrRefused) {
		return err
	} else if err != nil {
		log.Warn("redis not reachable at start; answering 503 until it is", "error", err)
	}
	return nil
}

// addPprof mounts Go's profiles on an internal listener's mux, so that they
// are never reachable through the API's address.
func addPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
