package api

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	if s.RequireAPIKey {
		e.Use(s.requireAPIKey) // after the limiter: guessing keys is rate limited
	}

	e.GET("/v1/stock/:product_id", s.getStock)
	e.POST("/v1/stock/bulk", s.bulkStock)
	e.GET("/v1/warehouses/:warehouse_id/stock", s.warehouseStock)
	s.addSyncRoutes(e)
	s.addCompatRoutes(e)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if !s.InternalMetrics {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{})))
	}
	e.GET("/openapi.json", s.openAPI)
}
