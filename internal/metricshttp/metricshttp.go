// Package metricshttp serves a registry's /metrics on a listener inside a
// program's errgroup, the way the projector and the warehouse sweeper expose
// theirs: the listener is opened by the caller first, so a taken port fails
// the start rather than a goroutine later.
package metricshttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// shutdownTimeout bounds how long a scrape in flight may hold the stop.
const shutdownTimeout = 5 * time.Second

// Serve serves GET /metrics of reg on ln in g until ctx is done or stop is
// closed (a job that ends by itself; nil: ctx only), then shuts down.
func Serve(ctx context.Context, g *errgroup.Group, stop <-chan struct{}, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) {
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
		case <-ctx.Done():
		case <-stop:
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
}
