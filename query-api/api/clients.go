package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Which client a request comes from, for the rate limiter and the access
// log. echo's default believes any X-Forwarded-For or X-Real-IP header, so
// a client could pick a new identity per request (past the limiter) and
// fill its table with made-up ones. Here the peer address counts, and the
// forwarded chain only as far as it passes through TrustedProxies.

// DefaultRateLimitClients bounds the rate limiter's table of clients.
const DefaultRateLimitClients = 100_000

// ipExtractor is the address a request counts as coming from.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	// Only the listed networks: echo would also trust loopback, link-local
	// and private addresses by default, any host of which could then forge
	// the header.
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// clientID is the rate limiter's identity of a request's client: its IPv4
// address, or its IPv6 /64 (one host is usually given a whole /64, and
// would otherwise have 2^64 identities). Bounded in length whatever the
// request says.
func clientID(c echo.Context) string {
	ip, err := netip.ParseAddr(strings.TrimSpace(c.RealIP()))
	if err != nil {
		return "unknown"
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// limiterStore is echo's RateLimiterStore with a bounded table: a token
// bucket per client, dropped after expires without requests; when the
// table is full, clients without a bucket share one overflow bucket, so
// that a flood of identities neither grows memory nor gets past the limit.
type limiterStore struct {
	rate     rate.Limit
	burst    int
	max      int
	expires  time.Duration
	overflow prometheus.Counter
	now      func() time.Time

	mu        sync.Mutex
	clients   map[string]*bucket
	shared    *rate.Limiter
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiterStore(r rate.Limit, burst, max int, expires time.Duration, overflow prometheus.Counter) *limiterStore {
	return &limiterStore{rate: r, burst: burst, max: max, expires: expires, overflow: overflow, now: time.Now,
		clients: make(map[string]*bucket), shared: rate.NewLimiter(r, burst)}
}

// Allow takes a token from id's bucket.
func (s *limiterStore) Allow(id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	b, ok := s.clients[id]
	if !ok {
		// A sweep costs the table's size: at most once per expiry period,
		// or once a second while the table is full.
		if since := now.Sub(s.lastSweep); since >= s.expires || (len(s.clients) >= s.max && since >= time.Second) {
			s.sweep(now)
		}
		if len(s.clients) >= s.max {
			s.overflow.Inc()
			return s.shared.AllowN(now, 1), nil
		}
		b = &bucket{lim: rate.NewLimiter(s.rate, s.burst)}
		s.clients[id] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1), nil
}

// sweep drops the buckets of clients quiet for expires.
func (s *limiterStore) sweep(now time.Time) {
	s.lastSweep = now
	for id, b := range s.clients {
		if now.Sub(b.seen) >= s.expires {
			delete(s.clients, id)
		}
	}
}

// rateLimiter answers 429 past RateLimit requests per second (RateBurst
// above it) per client (clientID). Probes and metrics are never limited:
// an orchestrator must see a busy instance as alive.
func (s *server) rateLimiter() echo.MiddlewareFunc {
	overflow := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "stock", Subsystem: "api", Name: "rate_limit_overflow_total",
		Help: "Requests rate-limited in the shared bucket because the table of clients (--rate-limit-clients) was full.",
	})
	s.Registerer.MustRegister(overflow)
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Skipper: func(c echo.Context) bool {
			return !strings.HasPrefix(c.Request().URL.Path, "/v1/")
		},
		Store:               newLimiterStore(rate.Limit(s.RateLimit), max(s.RateBurst, 1), s.RateLimitClients, 3*time.Minute, overflow),
		IdentifierExtractor: func(c echo.Context) (string, error) { return clientID(c), nil },
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return newError(http.StatusTooManyRequests, codeRateLimited, map[string]any{"limit_per_second": s.RateLimit},
				"more than %g requests per second from one client", s.RateLimit)
		},
	})
}

// requireAPIKey refuses every /v1/ request without a valid API key (401),
// before it reads anything: with RequireAPIKey the API serves no public
// view at all.
func (s *server) requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !strings.HasPrefix(c.Request().URL.Path, "/v1/") {
			return next(c)
		}
		if c.Request().Header.Get(keyAPIKey) == "" {
			return newError(http.StatusUnauthorized, codeInvalidAPIKey, nil, "the %s header is required", headerAPIKey)
		}
		if _, err := s.viewOf(c); err != nil {
			return err
		}
		return next(c)
	}
}
