// Package api serves the storefront's stock API over HTTP (echo): products
// by id, one or in bulk, as the documents the projector stored in Redis, with
// one JSON error shape for every failure. It reads Redis only, through
// internal/stockstore, and must never import Kafka or PostgreSQL code.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Store is what the API reads: served documents, ready to write out.
type Store interface {
	GetJSON(ctx context.Context, id string) (json.RawMessage, error)
	GetManyJSON(ctx context.Context, ids []string) (docs []json.RawMessage, notFound []string, err error)
	Ping(ctx context.Context) error
}

// Deps are the server's dependencies and limits.
type Deps struct {
	Store Store
	Log   *slog.Logger
	// Registerer receives the request metrics; Gatherer is served on
	// /metrics (usually the same registry).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// StoreTimeout bounds every Redis read of a request, so that a Redis
	// outage answers 503 quickly instead of holding the request.
	StoreTimeout time.Duration
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64
	// MaxBulkIDs bounds the ids of one bulk request; more get 400.
	MaxBulkIDs int
}

// Defaults for the zero fields of Deps.
const (
	DefaultStoreTimeout = time.Second
	DefaultMaxBodyBytes = 256 << 10
	DefaultMaxBulkIDs   = 1000
)

type server struct {
	Deps
	metrics *metrics
}

// NewServer returns the API's handler. It panics if the metrics cannot be
// registered, which only a programming error causes.
func NewServer(deps Deps) http.Handler {
	if deps.StoreTimeout <= 0 {
		deps.StoreTimeout = DefaultStoreTimeout
	}
	if deps.MaxBodyBytes <= 0 {
		deps.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if deps.MaxBulkIDs <= 0 {
		deps.MaxBulkIDs = DefaultMaxBulkIDs
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Gatherer == nil {
		deps.Gatherer = prometheus.NewRegistry()
	}
	s := &server{Deps: deps, metrics: newMetrics(deps.Registerer)}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	addRoutes(e, s)
	return e
}
