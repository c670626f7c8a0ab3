package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// addRoutes mounts every route: the stock reads here, the change feed
// (addSyncRoutes, sync.go) and the replaced system's routes (addCompatRoutes,
// compat.go) beside the handlers they call.
func addRoutes(e *echo.Echo, s *server) {
	e.Use(s.observe, middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.Log.Error("handler panicked", "route", c.Path(), "error", err, "stack", string(stack))
			return err // answered 500 by handleError
		},
	}))
	if s.RateLimit > 0 {
		e.Use(s.rateLimiter())
	}

	e.GET("/v1/stock/:product_id", s.getStock)
	e.POST("/v1/stock/bulk", s.bulkStock)
	e.GET("/v1/warehouses/:warehouse_id/stock", s.warehouseStock)
	s.addSyncRoutes(e)
	s.addCompatRoutes(e)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{})))
	e.GET("/openapi.json", s.openAPI)
}

// rateLimiter answers 429 past RateLimit requests per second (RateBurst
// above it) per client address. Probes and metrics are never limited: an
// orchestrator must see a busy instance as alive.
func (s *server) rateLimiter() echo.MiddlewareFunc {
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			return !strings.HasPrefix(p, "/v1/")
		},
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(s.RateLimit), Burst: max(s.RateBurst, 1), ExpiresIn: 3 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) { return c.RealIP(), nil },
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return newError(http.StatusTooManyRequests, codeRateLimited, map[string]any{"limit_per_second": s.RateLimit},
				"more than %g requests per second from one client", s.RateLimit)
		},
	})
}
