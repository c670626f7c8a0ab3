package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPISpec is the OpenAPI 3.1 description of every route; a test checks
// real answers against it, so it cannot drift from the code.
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPISpec returns the served OpenAPI document.
func OpenAPISpec() []byte { return openAPISpec }

func (s *server) openAPI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPISpec)
}
