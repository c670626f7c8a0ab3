package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stockpipe/stock/query-api/api"
)

const apiKey16 = "key-0123456789abcdef"

// from sends one request as the peer remote with headers.
func from(t *testing.T, h http.Handler, path, remote string, header map[string]string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remote
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// Which address counts for the rate limiter: the peer's, unless the peer
// is a trusted proxy; then the forwarded client's. IPv6 clients count per
// /64. A client cannot pick a fresh identity per request with a header.
func TestRateLimitIdentity(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	xff := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	tests := []struct {
		name    string
		trusted []netip.Prefix
		first   [2]any // remote, header
		second  [2]any
		same    bool // the second request is limited by the first's bucket
	}{
		{"a forged X-Forwarded-For without trusted proxies", nil,
			[2]any{"198.51.100.7:1000", xff("203.0.113.1")}, [2]any{"198.51.100.7:1001", xff("203.0.113.2")}, true},
		{"X-Real-IP is never believed", proxies,
			[2]any{"10.0.0.1:1000", map[string]string{"X-Real-IP": "203.0.113.1"}}, [2]any{"10.0.0.1:1001", map[string]string{"X-Real-IP": "203.0.113.2"}}, true},
		{"two clients behind a trusted proxy", proxies,
			[2]any{"10.0.0.1:1000", xff("203.0.113.1")}, [2]any{"10.0.0.1:1001", xff("203.0.113.2")}, false},
		{"a forged hop before the trusted proxy's", proxies,
			[2]any{"10.0.0.1:1000", xff("192.0.2.9, 203.0.113.1")}, [2]any{"10.0.0.1:1001", xff("192.0.2.10, 203.0.113.1")}, true},
		{"a header from a peer that is not a trusted proxy", proxies,
			[2]any{"198.51.100.7:1000", xff("203.0.113.1")}, [2]any{"198.51.100.7:1001", xff("203.0.113.2")}, true},
		{"one IPv6 /64", nil, [2]any{"[2001:db8:1:2::1]:1000", nil}, [2]any{"[2001:db8:1:2:ffff::9]:1000", nil}, true},
		{"two IPv6 /64s", nil, [2]any{"[2001:db8:1:2::1]:1000", nil}, [2]any{"[2001:db8:1:3::1]:1000", nil}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newAPIWith(t, api.Deps{RateLimit: 0.001, RateBurst: 1, TrustedProxies: tt.trusted})
			hdr := func(v any) map[string]string { m, _ := v.(map[string]string); return m }
			if code := from(t, h, "/v1/stock/SKU-1", tt.first[0].(string), hdr(tt.first[1])); code != 200 {
				t.Fatalf("first request: %d", code)
			}
			code := from(t, h, "/v1/stock/SKU-1", tt.second[0].(string), hdr(tt.second[1]))
			if (code == 429) != tt.same {
				t.Errorf("second request: %d; same client: %v", code, tt.same)
			}
		})
	}
}

// A table of clients that is full makes new clients share one bucket: a
// flood of identities neither grows it nor gets past the limit.
func TestRateLimitTableIsBounded(t *testing.T) {
	h, _ := newAPIWith(t, api.Deps{RateLimit: 0.001, RateBurst: 1, RateLimitClients: 2})
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if code := from(t, h, "/v1/stock/SKU-1", ip+":1", nil); code != 200 {
			t.Fatalf("%s: %d", ip, code)
		}
	}
	codes := []int{}
	for _, ip := range []string{"192.0.2.3", "192.0.2.4", "192.0.2.5"} {
		codes = append(codes, from(t, h, "/v1/stock/SKU-1", ip+":1", nil))
	}
	if codes[0] != 200 || codes[1] != 429 || codes[2] != 429 {
		t.Errorf("new clients past the table: %v, want one shared burst then 429", codes)
	}
}

// With RequireAPIKey every /v1/ route wants a listed key; probes do not.
func TestRequireAPIKey(t *testing.T) {
	h, _ := newAPIWith(t, api.Deps{APIKeys: []string{apiKey16}, RequireAPIKey: true})
	for _, path := range []string{"/v1/stock/SKU-1", "/v1/warehouses/WH-1/stock", "/v1/changes", "/v1/nope"} {
		if res, body := do(t, h, "GET", path, ""); res.StatusCode != 401 {
			t.Errorf("%s without a key: %d %s", path, res.StatusCode, body)
		} else {
			checkError(t, res, body, "invalid_api_key")
		}
		if res, _ := doWith(t, h, "GET", path, "", map[string]string{"X-API-Key": "key-not-a-listed-one"}); res.StatusCode != 401 {
			t.Errorf("%s with a wrong key: %d", path, res.StatusCode)
		}
	}
	if res, body := doWith(t, h, "GET", "/v1/stock/SKU-1", "", map[string]string{"X-API-Key": apiKey16}); res.StatusCode != 200 {
		t.Errorf("with the key: %d %s", res.StatusCode, body)
	}
	if res, _ := do(t, h, "GET", "/healthz", ""); res.StatusCode != 200 {
		t.Errorf("/healthz wants a key: %d", res.StatusCode)
	}
}

// InternalMetrics leaves /metrics to the caller's internal listener.
func TestInternalMetrics(t *testing.T) {
	h, _ := newAPIWith(t, api.Deps{InternalMetrics: true})
	if res, _ := do(t, h, "GET", "/metrics", ""); res.StatusCode != 404 {
		t.Errorf("/metrics on the API: %d, want 404", res.StatusCode)
	}
	h, _ = newAPIWith(t, api.Deps{})
	if res, _ := do(t, h, "GET", "/metrics", ""); res.StatusCode != 200 {
		t.Errorf("/metrics by default: %d", res.StatusCode)
	}
}
