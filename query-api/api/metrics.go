package api

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"method", "route", "code"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stock", Subsystem: "api", Name: "requests_total",
			Help: "HTTP requests by route template and status code.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "stock", Subsystem: "api", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route template and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1ms .. 3.3s
		}, labels),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe is the outermost middleware: it lets the error handler write the
// response first, so that it records the status the client got, and hands
// the request to the access log (5xx causes are logged by the error
// handler).
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched" // keeps label cardinality bounded
		}
		req, res := c.Request(), c.Response()
		code := strconv.Itoa(res.Status)
		s.metrics.requests.WithLabelValues(req.Method, route, code).Inc()
		s.metrics.duration.WithLabelValues(req.Method, route, code).Observe(d.Seconds())
		s.access.write(req.Context(), request{
			method: req.Method, route: route, path: req.URL.Path,
			status: res.Status, bytesOut: res.Size, duration: d,
		}, c.RealIP)
		return nil
	}
}
