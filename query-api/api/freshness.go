package api

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
)

// Freshness headers of every stock answer: everything the source committed
// up to this time (and position) is reflected in the answer.
const (
	headerWatermark         = "X-Stock-Watermark"
	headerWatermarkPosition = "X-Stock-Watermark-Position"
)

// watermark is the projection's low watermark: the oldest of the newest
// commits seen per partition. A change committed at or before it has been
// applied, whatever its partition, because each partition is applied in
// source order. An idle partition keeps it back (conservative, never wrong).
type watermark struct {
	ok         bool
	position   position.Position
	commitTime time.Time
	readAt     time.Time
	// header and headerPosition are the header values, formatted once per
	// read rather than once per request.
	header, headerPosition string
}

func lowWatermark(marks []stockstore.Watermark) watermark {
	var w watermark
	for i, m := range marks {
		if i == 0 || m.Position.Compare(w.position) < 0 {
			w.position = m.Position
		}
		if i == 0 || m.CommitTime.Before(w.commitTime) {
			w.commitTime = m.CommitTime
		}
		w.ok = true
	}
	return w
}

// freshness caches the watermark for a short while: reading it on every
// request would double the Redis round trips of a single GET. The request
// that finds it stale refreshes it inline; concurrent ones serve the value
// they have rather than queue (no goroutine of its own to own).
type freshness struct {
	store Store
	topic string
	every time.Duration

	refreshing sync.Mutex
	current    atomic.Pointer[watermark]
}

func (f *freshness) get(ctx context.Context) watermark {
	cur := f.current.Load()
	if cur != nil && time.Since(cur.readAt) < f.every {
		return *cur
	}
	if !f.refreshing.TryLock() {
		if cur != nil {
			return *cur
		}
		return watermark{}
	}
	defer f.refreshing.Unlock()
	marks, err := f.store.Watermarks(ctx, f.topic)
	if err != nil {
		// The request's own read reports Redis trouble; keep the old value.
		if cur != nil {
			return *cur
		}
		return watermark{}
	}
	w := lowWatermark(marks)
	w.readAt = time.Now()
	w.header, w.headerPosition = w.commitTime.UTC().Format(time.RFC3339Nano), w.position.String()
	f.current.Store(&w)
	return w
}

func (s *server) setFreshness(c echo.Context) {
	w := s.freshness.get(c.Request().Context())
	if !w.ok {
		return
	}
	h := c.Response().Header()
	h.Set(headerWatermark, w.header)
	h.Set(headerWatermarkPosition, w.headerPosition)
}

func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether this instance should get traffic: Redis answers, and
// the projection is not lagging more than MaxLag. Lag is measured per
// partition as how far behind the source commit its last batch was applied
// (applied_at - commit_time), the worst partition counting: it is high while
// the projector catches up on a backlog and stays low when the source is
// merely idle, which "now - last commit" would confuse with lag. A partition
// whose last batch reached its end (caught up) has no lag, however late that
// batch was: after a snapshot or a restart, a quiet partition would
// otherwise keep the API unready until its next write.
func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.StoreTimeout)
	defer cancel()
	details, err := s.readiness(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, details)
}

// ready is /readyz as a gauge, evaluated at each scrape: nothing in the
// process probes /readyz itself (a load balancer or the kubelet does, and
// their view is not in Prometheus), and an alert needs the answer.
func (s *server) ready() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), s.StoreTimeout)
	defer cancel()
	if _, err := s.readiness(ctx); err != nil {
		return 0
	}
	return 1
}

// readiness runs the checks of /readyz: the answer's details when ready,
// else the error to answer with.
func (s *server) readiness(ctx context.Context) (map[string]any, *apiError) {
	checks := map[string]string{}
	details := map[string]any{"checks": checks}
	if err := s.Store.Ping(ctx); err != nil {
		checks["redis"] = "unreachable"
		checks["projection"] = "unknown"
		e := unavailable(err)
		e.Code, e.Message, e.Details = codeNotReady, "not ready: redis unreachable", details
		return nil, e
	}
	checks["redis"] = "ok"
	if s.MaxLag > 0 {
		// Watermarks cannot tell a dead projector from a quiet source; the
		// projector's heartbeat can.
		at, alive, err := s.Store.LastHeartbeat(ctx, s.WatermarkTopic)
		switch {
		case err != nil:
			checks["projector"] = "unreadable"
		case !alive:
			checks["projector"] = "no heartbeat: no projector is running"
		default:
			checks["projector"] = "ok"
			details["projector_heartbeat_at"] = at.Format(time.RFC3339Nano)
		}
	}
	marks, err := s.Store.Watermarks(ctx, s.WatermarkTopic)
	if err != nil {
		checks["projection"] = "unreadable"
		e := unavailable(err)
		e.Code, e.Message, e.Details = codeNotReady, "not ready: watermarks unreadable", details
		return nil, e
	}
	var lag time.Duration
	var lastApplied time.Time
	for _, m := range marks {
		if !m.CaughtUp {
			// A partition whose last batch reached its end has nothing
			// waiting, however late that batch was applied.
			lag = max(lag, m.AppliedAt.Sub(m.CommitTime))
		}
		if m.AppliedAt.After(lastApplied) {
			lastApplied = m.AppliedAt
		}
	}
	switch {
	case s.MaxLag <= 0:
		checks["projection"] = "not checked"
	case len(marks) == 0:
		checks["projection"] = "no watermark: the projector has applied nothing yet"
	case lag > s.MaxLag:
		checks["projection"] = "lagging"
	default:
		checks["projection"] = "ok"
	}
	if len(marks) > 0 {
		details["projection_lag_seconds"] = lag.Seconds()
		details["max_lag_seconds"] = s.MaxLag.Seconds()
		details["last_applied_at"] = lastApplied.UTC().Format(time.RFC3339Nano)
		w := lowWatermark(marks)
		details["watermark"] = w.commitTime.UTC().Format(time.RFC3339Nano)
		details["watermark_position"] = w.position.String()
	}
	if p := checks["projector"]; p != "" && p != "ok" {
		return nil, newError(http.StatusServiceUnavailable, codeNotReady, details, "not ready: projector %s", p)
	}
	if p := checks["projection"]; p != "ok" && p != "not checked" {
		return nil, newError(http.StatusServiceUnavailable, codeNotReady, details, "not ready: projection %s", p)
	}
	details["status"] = "ready"
	return details, nil
}
