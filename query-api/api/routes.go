package api

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes is the whole API surface in one place.
func addRoutes(e *echo.Echo, s *server) {
	e.Use(s.observe, middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.Log.Error("handler panicked", "route", c.Path(), "error", err, "stack", string(stack))
			return err // answered 500 by handleError
		},
	}))

	e.GET("/v1/stock/:product_id", s.getStock)
	e.POST("/v1/stock/bulk", s.bulkStock)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{})))
}
