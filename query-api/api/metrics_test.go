package api_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stockpipe/stock/query-api/api"
)

// Every request is counted by method, route template and code, whatever
// the access log keeps; a method no client should send is counted as
// "other", so that odd methods cannot grow the series without bound.
func TestRequestMetrics(t *testing.T) {
	h, _ := newLoggedAPI(t, slog.LevelInfo, api.Deps{})
	for range 3 {
		do(t, h, "GET", "/v1/stock/SKU-1", "")
	}
	do(t, h, "GET", "/v1/stock/SKU-404", "")
	do(t, h, "BREW", "/v1/stock/SKU-1", "")
	do(t, h, "BREW", "/no/such/route", "")
	_, body := do(t, h, "GET", "/metrics", "")
	for _, want := range []string{
		`stock_api_requests_total{code="200",method="GET",route="/v1/stock/:product_id"} 3`,
		`stock_api_requests_total{code="404",method="GET",route="/v1/stock/:product_id"} 1`,
		`stock_api_requests_total{code="405",method="other",route="/v1/stock/:product_id"} 1`,
		`stock_api_requests_total{code="404",method="other",route="unmatched"} 1`,
		`stock_api_request_duration_seconds_count{code="200",method="GET",route="/v1/stock/:product_id"} 3`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), "BREW") {
		t.Error("/metrics has a series of the method BREW")
	}
}
