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
	tests := []testenv.ConfigCase[*config]{
		{Name: "secure defaults", Check: func(c *config) bool {
			return !c.RequireAPIKey && len(c.TrustedProxies) == 0 && c.RateLimitClients == 100_000 && c.MetricsAddr == "" && c.TLSCertFile == ""
		}},
		{Name: "keys from a file, required, proxies, TLS", Args: []string{"--require-api-key", "--trusted-proxies", "10.0.0.0/8,192.0.2.7"},
			Env: map[string]string{"STOCK_API_KEYS_FILE": keys, "STOCK_API_TLS_CERT_FILE": certs.ServerCert, "STOCK_API_TLS_KEY_FILE": certs.ServerKey},
			Check: func(c *config) bool {
				k, _ := c.apiKeys()
				p, _ := c.trustedProxies()
				return c.RequireAPIKey && len(k) == 2 && len(p) == 2 && p[1].Bits() == 32
			}},
		{Name: "every problem reported", Args: []string{"--require-api-key", "--trusted-proxies", "not-a-net", "--tls-cert-file", certs.ServerCert,
			"--rate-limit-clients", "0", "--metrics-addr", "127.0.0.1:8080"},
			WantErr: []string{"--require-api-key without api keys", "not a network", "go together", "rate limit clients", "--metrics-addr is the API's address"}},
		{Name: "a keys file that is not there", Args: []string{"--api-keys-file", "/nonexistent/keys"}, WantErr: []string{"--api-keys-file"}},
	}
	testenv.RunConfigCases(t, tests, parse)
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
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", addr, "--redis-prefix", prefix, "--metrics-addr", internal, "--pprof-addr", internal,
			"--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey, "--require-api-key"},
			testenv.Getenv(map[string]string{"STOCK_REDIS_ADDR": testenv.RedisAddr(), "STOCK_API_KEYS": key}), &logs)
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
