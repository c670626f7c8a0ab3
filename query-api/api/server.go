// Package api serves the storefront's stock API over HTTP (echo): products
// by id, one or in bulk, per warehouse, and as an incremental change feed,
// from the documents the projector stored in Redis, with freshness headers,
// ETags, a public (capped) view and one JSON error shape for every failure.
// It reads Redis only, through internal/stockstore, and must never import
// Kafka or PostgreSQL code; it does not import schemas either (its registry
// client links franz-go), so the one name it needs from the contract is
// repeated here and checked against schemas by a test.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/stockstore"
)

// DefaultWatermarkTopic is the projected topic's name in the Kafka contract
// (schemas.TopicLevels), repeated here because the query API must not link
// the Kafka contract package and its registry client; the architecture test
// keeps that arrow.
const DefaultWatermarkTopic = "stock.levels.v1"

// Store is what the API reads: served documents, ready to write out, and
// the projection's watermarks.
type Store interface {
	GetJSON(ctx context.Context, id string) (json.RawMessage, error)
	GetManyJSON(ctx context.Context, ids []string) ([]json.RawMessage, error) // aligned with ids, nil where missing
	Watermarks(ctx context.Context, topic string) ([]stockstore.Watermark, error)
	// LastHeartbeat says whether a projector of topic is alive.
	LastHeartbeat(ctx context.Context, topic string) (at time.Time, ok bool, err error)
	Ping(ctx context.Context) error

	// LowStock pages the products low or out of stock in a warehouse.
	LowStock(ctx context.Context, warehouseID, after string, limit int) (productIDs []string, next string, err error)
	// Changes pages the change index after an opaque cursor;
	// stockstore.ErrCursorExpired and ErrBadCursor say why a cursor fails.
	Changes(ctx context.Context, after string, limit int) (changes []stockstore.Change, next string, err error)
	ChangesHead(ctx context.Context) (string, error)
	// CursorBefore and ChangesIn serve the replaced system's
	// recently-updated route: a time mapped onto the change index, and a
	// bounded stretch of it read at an offset.
	CursorBefore(ctx context.Context, t time.Time) (cursor, head string, err error)
	ChangesIn(ctx context.Context, from, upTo string, offset, limit int) (changes []stockstore.Change, next string, more bool, err error)
}

var _ Store = (*stockstore.Store)(nil)

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
	// MaxPageSize bounds the limit of paginated reads; DefaultPageSize is
	// used when the request gives none.
	MaxPageSize, DefaultPageSize int

	// WatermarkTopic is the topic whose watermarks the projection writes
	// (the levels topic, stock.levels.v1, by default).
	WatermarkTopic string
	// WatermarkRefresh is how long a read watermark is served in headers
	// before a request reads it again.
	WatermarkRefresh time.Duration
	// MaxLag fails /readyz when the projection applied its last batch more
	// than this behind the source commit; 0 disables the check.
	MaxLag time.Duration

	// CacheMaxAge is the max-age of Cache-Control on answers; 0 sends
	// no-cache (clients revalidate with If-None-Match every time).
	CacheMaxAge time.Duration

	// PublicCap, when positive, caps every quantity served to callers
	// without a valid API key at this number; statuses stay exact.
	PublicCap int64
	// APIKeys are the keys that see exact quantities (header X-API-Key). A
	// key that is sent but not listed is refused with 401.
	APIKeys []string

	// RequireAPIKey refuses every /v1/ request without a listed key (401):
	// no public view at all.
	RequireAPIKey bool

	// RateLimit, when positive, is the steady requests per second allowed
	// per client address (RateBurst above it); more get 429.
	// RateLimitClients bounds the clients tracked (DefaultRateLimitClients
	// when 0); past it, new clients share one bucket.
	RateLimit        float64
	RateBurst        int
	RateLimitClients int
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// when they are the peer; none: the peer address is the client.
	TrustedProxies []netip.Prefix

	// InternalMetrics leaves /metrics out of this handler: the caller
	// serves the Gatherer on an internal listener.
	InternalMetrics bool

	// AccessLog says which requests are logged at info (AccessLogErrors
	// when empty); SlowRequest is how long a request takes to count as slow
	// (DefaultSlowRequest when 0); AccessLogMaxRate bounds the info lines a
	// second of AccessLogErrors (DefaultAccessLogMaxRate when 0, unlimited
	// when negative).
	AccessLog        AccessLog
	SlowRequest      time.Duration
	AccessLogMaxRate float64

	// SinceMargin is how much earlier than a recently-updated request's
	// since the answer starts (DefaultSinceMargin when 0): the longest a
	// change is assumed to take from its commit to the cache.
	SinceMargin time.Duration
}

// Defaults for the zero fields of Deps.
const (
	DefaultStoreTimeout     = time.Second
	DefaultMaxBodyBytes     = 256 << 10
	DefaultMaxBulkIDs       = 1000
	DefaultMaxPageSize      = 1000
	DefaultPageSizeValue    = 100
	DefaultWatermarkRefresh = 250 * time.Millisecond
)

type server struct {
	Deps
	metrics *metrics
	access  *accessLog
	// cacheControl is built once from CacheMaxAge.
	cacheControl cacheControl
	// reads coalesces the one-product reads of concurrent requests.
	reads     *coalescer
	freshness *freshness
	apiKeys   [][]byte
}

func (d *Deps) setDefaults() {
	if d.StoreTimeout <= 0 {
		d.StoreTimeout = DefaultStoreTimeout
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.MaxBulkIDs <= 0 {
		d.MaxBulkIDs = DefaultMaxBulkIDs
	}
	if d.MaxPageSize <= 0 {
		d.MaxPageSize = DefaultMaxPageSize
	}
	if d.DefaultPageSize <= 0 {
		d.DefaultPageSize = min(DefaultPageSizeValue, d.MaxPageSize)
	}
	if d.WatermarkTopic == "" {
		d.WatermarkTopic = DefaultWatermarkTopic
	}
	if d.WatermarkRefresh <= 0 {
		d.WatermarkRefresh = DefaultWatermarkRefresh
	}
	if d.SinceMargin <= 0 {
		d.SinceMargin = DefaultSinceMargin
	}
	if d.RateLimitClients <= 0 {
		d.RateLimitClients = DefaultRateLimitClients
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.NewRegistry()
	}
	if d.Gatherer == nil {
		d.Gatherer = prometheus.NewRegistry()
	}
}

// NewServer returns the API's handler. It panics if the metrics cannot be
// registered, which only a programming error causes.
func NewServer(deps Deps) http.Handler {
	deps.setDefaults()
	s := &server{Deps: deps, metrics: newMetrics(deps.Registerer),
		access:       newAccessLog(deps.Log, deps.AccessLog, deps.SlowRequest, deps.AccessLogMaxRate),
		cacheControl: newCacheControl(deps.CacheMaxAge),
		reads:        &coalescer{store: deps.Store, timeout: deps.StoreTimeout}}
	s.freshness = &freshness{store: deps.Store, topic: deps.WatermarkTopic, every: deps.WatermarkRefresh}
	deps.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stock", Subsystem: "api", Name: "ready",
		Help: "1 when /readyz would answer 200 (Redis answers, a projector's heartbeat is alive, the projection is within --max-lag), else 0; checked at each scrape.",
	}, s.ready))
	for _, k := range deps.APIKeys {
		if k != "" {
			s.apiKeys = append(s.apiKeys, []byte(k))
		}
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(deps.TrustedProxies)
	addRoutes(e, s)
	return e
}
