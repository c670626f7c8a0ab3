package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

func TestParseSecurityConfig(t *testing.T) {
	certs := testenv.NewCerts(t)
	keys := testenv.SecretFile(t, "keys", "# storefront\nkey-0123456789abcdef\nkey-fedcba9876543210")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(*config) bool
		wantErr []string
	}{
		{name: "secure defaults", check: func(c *config) bool {
			return !c.RequireAPIKey && len(c.TrustedProxies) == 0 && c.RateLimitClients == 100_000 && c.MetricsAddr == "" && c.TLSCertFile == ""
		}},
		{name: "keys from a file, required, proxies, TLS", args: []string{"--require-api-key", "--trusted-proxies", "10.0.0.0/8,192.0.2.7"},
			env: map[string]string{"STOCK_API_KEYS_FILE": keys, "STOCK_API_TLS_CERT_FILE": certs.ServerCert, "STOCK_API_TLS_KEY_FILE": certs.ServerKey},
			check: func(c *config) bool {
				k, _ := c.apiKeys()
				p, _ := c.trustedProxies()
				return c.RequireAPIKey && len(k) == 2 && len(p) == 2 && p[1].Bits() == 32
			}},
		{name: "every problem reported", args: []string{"--require-api-key", "--trusted-proxies", "not-a-net", "--tls-cert-file", certs.ServerCert,
			"--rate-limit-clients", "0", "--metrics-addr", "127.0.0.1:8080"},
			wantErr: []string{"--require-api-key without api keys", "not a network", "go together", "rate limit clients", "--metrics-addr is the API's address"}},
		{name: "a keys file that is not there", args: []string{"--api-keys-file", "/nonexistent/keys"}, wantErr: []string{"--api-keys-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if len(tt.wantErr) > 0 {
				for _, w := range tt.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || !tt.check(cfg) {
				t.Errorf("config %+v, %v", cfg, err)
			}
		})
	}
}

// Served over TLS with a key required on /v1/, /metrics and the profiles
// on one internal listener and not on the API's; the start log holds no
// key.
func TestServeTLSWithAnInternalListener(t *testing.T) {
	certs := testenv.NewCerts(t)
	const key = "key-0123456789abcdef"
	rdb := storetest.Client(t)
	prefix := storetest.Prefix(t, rdb)
	addr, internal := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", addr, "--redis-prefix", prefix, "--metrics-addr", internal, "--pprof-addr", internal,
			"--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey, "--require-api-key"},
			env(map[string]string{"STOCK_REDIS_ADDR": testenv.RedisAddr(), "STOCK_API_KEYS": key}), &logs)
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool(), MinVersion: tls.VersionTLS12}}}
	get := func(url string, header ...string) (int, string) {
		for deadline := time.Now().Add(10 * time.Second); ; {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if len(header) == 2 {
				req.Header.Set(header[0], header[1])
			}
			res, err := client.Do(req)
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res.StatusCode, string(b)
			}
			if time.Now().After(deadline) || strings.Contains(err.Error(), "certificate") {
				return 0, err.Error()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		url    string
		header []string
		want   int
	}{
		{"https://" + addr + "/healthz", nil, 200},
		{"https://localhost" + addr[strings.LastIndex(addr, ":"):] + "/healthz", nil, 200},
		{"https://" + addr + "/v1/stock/SKU-1", nil, 401},
		{"https://" + addr + "/v1/stock/SKU-1", []string{"X-API-Key", key}, 404}, // past the key: no such product
		{"https://" + addr + "/metrics", nil, 404},
		{"https://" + addr + "/debug/pprof/", nil, 404},
		{"http://" + internal + "/metrics", nil, 200},
		{"http://" + internal + "/debug/pprof/", nil, 200},
	} {
		if code, body := get(tc.url, tc.header...); code != tc.want {
			t.Errorf("GET %s: %d, want %d (%.200s)", tc.url, code, tc.want, body)
		}
	}
	// Plain HTTP to the TLS port gets no stock.
	res, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("plain HTTP answered on the TLS address")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if strings.Contains(logs.String(), key) {
		t.Errorf("the log holds the API key:\n%s", logs.String())
	}
}
