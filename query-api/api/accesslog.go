package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// AccessLog says which requests the access log writes at info level.
type AccessLog string

const (
	// AccessLogErrors (the default) logs at info the requests that point
	// at a problem: answered 5xx, or 4xx other than 404 and 429 (unknown
	// products and throttled clients are normal answers at volume, counted
	// by the request metrics), or slower than SlowRequest; at most
	// AccessLogMaxRate such lines a second. Every other request is logged
	// at debug.
	AccessLogErrors AccessLog = "errors"
	// AccessLogAll logs every request at info. At tens of thousands of
	// requests a second that is megabytes of log a second and a write per
	// request: a tool for a short look, not for production.
	AccessLogAll AccessLog = "all"
	// AccessLogOff logs no request (5xx causes are still logged at warn).
	AccessLogOff AccessLog = "off"
)

// Defaults of the access log.
const (
	DefaultSlowRequest      = 100 * time.Millisecond
	DefaultAccessLogMaxRate = 100
)

// accessLog writes one line per request it is asked to, at the level the
// mode gives it.
type accessLog struct {
	log  *slog.Logger
	mode AccessLog
	slow time.Duration
	// limit bounds the info lines of AccessLogErrors: when every request
	// turns slow (an overload, Redis trouble) a line per request would add
	// a write per request to the overload. nil: unlimited.
	limit *rate.Limiter
	// suppressed counts the lines the limit dropped since the last line
	// written; that line reports them.
	suppressed atomic.Int64
}

func newAccessLog(log *slog.Logger, mode AccessLog, slow time.Duration, maxRate float64) *accessLog {
	a := &accessLog{log: log, mode: mode, slow: slow}
	if mode == "" {
		a.mode = AccessLogErrors
	}
	if slow <= 0 {
		a.slow = DefaultSlowRequest
	}
	switch {
	case maxRate == 0:
		maxRate = DefaultAccessLogMaxRate
		fallthrough
	case maxRate > 0:
		a.limit = rate.NewLimiter(rate.Limit(maxRate), max(int(maxRate), 1))
	}
	return a
}

// level is the level of a request's line, or false for no line.
func (a *accessLog) level(status int, d time.Duration) (slog.Level, bool) {
	switch a.mode {
	case AccessLogOff:
		return 0, false
	case AccessLogAll:
		return slog.LevelInfo, true
	}
	if status >= 500 || d >= a.slow ||
		status >= 400 && status != http.StatusNotFound && status != http.StatusTooManyRequests {
		return slog.LevelInfo, true
	}
	return slog.LevelDebug, true
}

// request is one request as the access log sees it.
type request struct {
	method, route, path string
	status              int
	bytesOut            int64
	duration            time.Duration
}

// write logs r if its level is enabled; attrs are built only then, so a
// request below the level costs a comparison.
func (a *accessLog) write(ctx context.Context, r request, remoteIP func() string) {
	level, ok := a.level(r.status, r.duration)
	if !ok || !a.log.Enabled(ctx, level) {
		return
	}
	var suppressed int64
	if level == slog.LevelInfo && a.mode == AccessLogErrors && a.limit != nil {
		if !a.limit.Allow() {
			a.suppressed.Add(1)
			return
		}
		suppressed = a.suppressed.Swap(0)
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("method", r.method), slog.String("route", r.route), slog.String("path", r.path),
		slog.Int("status", r.status), slog.Float64("duration_ms", float64(r.duration.Microseconds())/1000),
		slog.String("remote_ip", remoteIP()), slog.Int64("bytes_out", r.bytesOut))
	if r.duration >= a.slow {
		attrs = append(attrs, slog.Bool("slow", true))
	}
	if suppressed > 0 {
		// Lines the rate limit dropped before this one.
		attrs = append(attrs, slog.Int64("suppressed", suppressed))
	}
	a.log.LogAttrs(ctx, level, "request", attrs...)
}
