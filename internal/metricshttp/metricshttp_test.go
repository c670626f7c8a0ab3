package metricshttp_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/stockpipe/stock/internal/metricshttp"
)

// A scrape sees the registry's metrics, and closing stop ends the server
// without an error while ctx still runs.
func TestServeScrapeThenStop(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, ctx := errgroup.WithContext(context.Background())
	stop := make(chan struct{})
	metricshttp.Serve(ctx, g, stop, ln, reg, slog.New(slog.DiscardHandler))

	res, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "test_things_total 3") {
		t.Errorf("scrape lacks the counter:\n%s", body)
	}
	if res, err := http.Post("http://"+ln.Addr().String()+"/metrics", "text/plain", nil); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /metrics: %d, want 405", res.StatusCode)
		}
	}
	close(stop)
	if err := g.Wait(); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/metrics"); err == nil {
		t.Error("still serving after stop")
	}
}
