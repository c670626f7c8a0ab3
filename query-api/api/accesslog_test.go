package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/query-api/api"
)

// logLine is an access log line as an operator's log pipeline reads it.
type logLine struct {
	Level      string  `json:"level"`
	Msg        string  `json:"msg"`
	Method     string  `json:"method"`
	Route      string  `json:"route"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	RemoteIP   string  `json:"remote_ip"`
	BytesOut   int64   `json:"bytes_out"`
	Slow       bool    `json:"slow"`
	Suppressed int64   `json:"suppressed"`
}

// requests returns the access log lines written so far. Requests are
// served synchronously in these tests, so a plain buffer holds the log.
func requests(t *testing.T, log *bytes.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for line := range strings.SplitSeq(strings.TrimSpace(log.String()), "\n") {
		if line == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if l.Msg == "request" {
			out = append(out, l)
		}
	}
	return out
}

// newLoggedAPI serves an in-memory store holding SKU-1, logging JSON at
// level into the returned sink.
func newLoggedAPI(t *testing.T, level slog.Level, deps api.Deps) (http.Handler, *bytes.Buffer) {
	t.Helper()
	s := snapshot("SKU-1", 10, position.Position{LSN: 1, Index: 1})
	doc, err := json.Marshal(s.Product())
	if err != nil {
		t.Fatal(err)
	}
	sink := &bytes.Buffer{}
	deps.Store = memStore{"SKU-1": doc}
	deps.Log = slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	deps.Registerer, deps.Gatherer = reg, reg
	return api.NewServer(deps), sink
}

func TestAccessLog(t *testing.T) {
	ok := "/v1/stock/SKU-1"         // 200
	unknown := "/v1/stock/SKU-404"  // 404: a normal answer
	invalid := "/v1/stock/bad%20id" // 400: a client bug
	tests := []struct {
		name  string
		level slog.Level
		deps  api.Deps
		paths []string
		// want is, per path, the level of its line ("" for none).
		want []string
	}{
		// The cases not about slow requests make none slow: on a loaded
		// machine a request can take the default SlowRequest.
		{name: "errors mode at info logs client bugs only", level: slog.LevelInfo, deps: api.Deps{SlowRequest: time.Hour},
			paths: []string{ok, unknown, invalid}, want: []string{"", "", "INFO"}},
		{name: "errors mode at debug logs the rest at debug", level: slog.LevelDebug, deps: api.Deps{SlowRequest: time.Hour},
			paths: []string{ok, unknown, invalid}, want: []string{"DEBUG", "DEBUG", "INFO"}},
		{name: "slow requests at info", level: slog.LevelInfo, deps: api.Deps{SlowRequest: time.Nanosecond},
			paths: []string{ok, unknown}, want: []string{"INFO", "INFO"}},
		{name: "all at info", level: slog.LevelInfo, deps: api.Deps{AccessLog: api.AccessLogAll, SlowRequest: time.Hour},
			paths: []string{ok, unknown, invalid}, want: []string{"INFO", "INFO", "INFO"}},
		{name: "off logs nothing even at debug", level: slog.LevelDebug,
			deps:  api.Deps{AccessLog: api.AccessLogOff, SlowRequest: time.Hour},
			paths: []string{ok, unknown, invalid}, want: []string{"", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, sink := newLoggedAPI(t, tt.level, tt.deps)
			for i, p := range tt.paths {
				before := len(requests(t, sink))
				res, _ := do(t, h, "GET", p, "")
				lines := requests(t, sink)[before:]
				if tt.want[i] == "" {
					if len(lines) != 0 {
						t.Errorf("GET %s (%d) logged %+v, want no line", p, res.StatusCode, lines)
					}
					continue
				}
				if len(lines) != 1 {
					t.Fatalf("GET %s (%d) logged %d lines, want one at %s", p, res.StatusCode, len(lines), tt.want[i])
				}
				l := lines[0]
				if l.Level != tt.want[i] || l.Method != "GET" || l.Route != "/v1/stock/:product_id" ||
					l.Status != res.StatusCode || l.Path == "" || l.RemoteIP == "" || l.DurationMS < 0 {
					t.Errorf("GET %s (%d) logged %+v, want a %s line of it", p, res.StatusCode, l, tt.want[i])
				}
				if res.StatusCode == 200 && l.BytesOut == 0 {
					t.Errorf("line of a 200 without bytes_out: %+v", l)
				}
				if l.Slow != (tt.deps.SlowRequest == time.Nanosecond) {
					t.Errorf("slow = %v in %+v", l.Slow, l)
				}
			}
		})
	}
}

// A flood of failing requests is logged at a bounded rate, the next line
// written says how many were left out, and the metrics count them all.
func TestAccessLogRateLimit(t *testing.T) {
	// 20 lines a second, 20 at once.
	h, sink := newLoggedAPI(t, slog.LevelInfo, api.Deps{AccessLogMaxRate: 20})
	const flood = 60
	for range flood {
		do(t, h, "GET", "/v1/stock/bad%20id", "")
	}
	logged := len(requests(t, sink))
	if logged >= flood {
		t.Fatalf("%d failing requests at once logged %d lines: no limit", flood, logged)
	}
	// Once the limit refills, a failing request is logged again. Waiting
	// on that line rather than sleeping: each request sent meanwhile is one
	// more left out, counted below like the flood's.
	sent := flood
	var lines []logLine
	for len(lines) <= logged {
		do(t, h, "GET", "/v1/stock/bad%20id", "")
		sent++
		if lines = requests(t, sink); len(lines) > logged+1 {
			t.Fatalf("one request after the flood logged %d lines, want 1", len(lines)-logged)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A line logged mid-flood reports the lines dropped before it, so the
	// count can be spread over several lines: together they report all.
	var suppressed int64
	for _, l := range lines {
		suppressed += l.Suppressed
	}
	if want := int64(sent - len(lines)); suppressed != want {
		t.Errorf("the lines say %d suppressed in all, want %d", suppressed, want)
	}
	_, body := do(t, h, "GET", "/metrics", "")
	want := fmt.Sprintf(`stock_api_requests_total{code="400",method="GET",route="/v1/stock/:product_id"} %d`, sent)
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// brokenStore fails every product read, as Redis down does.
type brokenStore struct{ memStore }

func (brokenStore) GetJSON(context.Context, string) (json.RawMessage, error) {
	return nil, errors.New("connection refused")
}

// A 5xx is in the access log at info by default, and its cause, which the
// client never sees, is logged at warn.
func TestAccessLogKeepsFailures(t *testing.T) {
	sink := &bytes.Buffer{}
	reg := prometheus.NewRegistry()
	h := api.NewServer(api.Deps{Store: brokenStore{}, Registerer: reg, Gatherer: reg,
		Log: slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if res, _ := do(t, h, "GET", "/v1/stock/SKU-1", ""); res.StatusCode != 503 {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
	if lines := requests(t, sink); len(lines) != 1 || lines[0].Level != "INFO" || lines[0].Status != 503 {
		t.Errorf("access log %+v, want one info line of the 503", lines)
	}
	if log := sink.String(); !strings.Contains(log, `"level":"WARN","msg":"request failed"`) || !strings.Contains(log, "connection refused") {
		t.Errorf("no warn line with the cause:\n%s", log)
	}
}
