package api

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// series caches each label set's counter and histogram: looking them
	// up in the vectors hashed three strings and formatted the code on
	// every request. The label sets are bounded (routes, methods, codes).
	mu     sync.RWMutex
	series map[seriesKey]series
}

type seriesKey struct {
	method, route string
	code          int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
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
		series: map[seriesKey]series{},
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe counts a request and its latency.
func (m *metrics) observe(method, route string, code int, d time.Duration) {
	k := seriesKey{method: method, route: route, code: code}
	m.mu.RLock()
	s, ok := m.series[k]
	m.mu.RUnlock()
	if !ok {
		c := strconv.Itoa(code)
		s = series{requests: m.requests.WithLabelValues(method, route, c), duration: m.duration.WithLabelValues(method, route, c)}
		m.mu.Lock()
		m.series[k] = s
		m.mu.Unlock()
	}
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}

// methodLabel keeps the method label bounded: a client may send any token
// as a method, and each would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
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
		s.metrics.observe(methodLabel(req.Method), route, res.Status, d)
		s.access.write(req.Context(), request{
			method: req.Method, route: route, path: req.URL.Path,
			status: res.Status, bytesOut: res.Size, duration: d,
		}, c.RealIP)
		return nil
	}
}
