package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Error codes of the JSON error body, stable for clients to branch on.
const (
	codeBadRequest         = "bad_request"
	codeInvalidJSON        = "invalid_json"
	codeUnknownField       = "unknown_field"
	codeInvalidProductID   = "invalid_product_id"
	codeInvalidWarehouseID = "invalid_warehouse_id"
	codeInvalidParameter   = "invalid_parameter"
	codeInvalidAPIKey      = "invalid_api_key"
	codeCursorExpired      = "cursor_expired"
	codeRateLimited        = "rate_limited"
	codeNotReady           = "not_ready"
	codeTooManyIDs         = "too_many_ids"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeTooLarge           = "payload_too_large"
	codeUnavailable        = "unavailable"
	codeInternal           = "internal"
)

// apiError is every error a handler returns; handleError writes it as
// {"error": {"code", "message", "details"}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details"`
	// cause is logged, never shown.
	cause error
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }
func (e *apiError) Unwrap() error { return e.cause }

func newError(status int, code string, details any, format string, args ...any) *apiError {
	if details == nil {
		details = struct{}{} // an object always, so clients need no null check
	}
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...), Details: details}
}

func unavailable(cause error) *apiError {
	e := newError(http.StatusServiceUnavailable, codeUnavailable, nil, "the stock store is unavailable, retry shortly")
	e.cause = cause
	return e
}

// handleError is echo's HTTPErrorHandler: handler errors, echo's own 404 and
// 405, body limits and recovered panics all leave in the one JSON shape.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = fromHTTPError(he)
	default:
		ae = newError(http.StatusInternalServerError, codeInternal, nil, "internal error")
		ae.cause = err
	}
	if ae.Status >= 500 {
		s.Log.Warn("request failed", "method", c.Request().Method, "route", c.Path(),
			"status", ae.Status, "code", ae.Code, "error", errors.Unwrap(ae))
	}
	h := c.Response().Header()
	// Errors must not be cached by a proxy in front: a 503 would outlive
	// the outage. Stock headers set before the failure are dropped.
	h.Set("Cache-Control", "no-store")
	h.Del("ETag")
	if ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	body := struct {
		Error *apiError `json:"error"`
	}{ae}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	if err := c.JSON(ae.Status, body); err != nil {
		s.Log.Warn("writing error response", "error", err)
	}
}

func fromHTTPError(he *echo.HTTPError) *apiError {
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok && m != "" {
		msg = m
	}
	code := codeBadRequest
	switch he.Code {
	case http.StatusNotFound:
		code, msg = codeNotFound, "no such route"
	case http.StatusMethodNotAllowed:
		code = codeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		code = codeTooLarge
	case http.StatusServiceUnavailable:
		code = codeUnavailable
	case http.StatusTooManyRequests:
		code = codeRateLimited
	default:
		if he.Code >= 500 {
			code, msg = codeInternal, "internal error"
		}
	}
	ae := newError(he.Code, code, nil, "%s", msg)
	ae.cause = he.Internal
	return ae
}
