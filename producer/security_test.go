package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/redact"
	"github.com/stockpipe/stock/internal/testenv"
)

// The secure settings: secrets from the environment or from files, the
// PostgreSQL password put into the URL, and every problem in one error.
func TestParseSecureConfig(t *testing.T) {
	testenv.ClearStockEnv(t)
	certs := testenv.NewCerts(t)
	pgPW := testenv.SecretFile(t, "pg", "pg pass'word")
	kafkaPW := testenv.SecretFile(t, "kafka", "kafka-pw")
	tests := []testenv.ConfigCase[*config]{
		{Name: "everything from the environment", Env: map[string]string{
			"STOCK_PG_URL":                   "postgres://stock_cdc@db:5432/stock?sslmode=verify-full&sslrootcert=" + certs.CAFile,
			"STOCK_PG_PASSWORD_FILE":         pgPW,
			"STOCK_KAFKA_TLS_CA_FILE":        certs.CAFile,
			"STOCK_KAFKA_SASL_MECHANISM":     "SCRAM-SHA-512",
			"STOCK_KAFKA_SASL_USERNAME":      "stock-producer",
			"STOCK_KAFKA_SASL_PASSWORD_FILE": kafkaPW,
			"STOCK_SCHEMA_REGISTRY_URL":      "https://registry:8081",
			"STOCK_SCHEMA_REGISTRY_USERNAME": "key", "STOCK_SCHEMA_REGISTRY_PASSWORD": "reg-secret",
			"STOCK_SCHEMA_REGISTRY_LOOKUP_ONLY": "true",
		}, Check: func(c *config) bool {
			p := c.pipeline()
			return strings.HasPrefix(p.PostgresURL, "postgres://stock_cdc:pg%20pass%27word@db:5432/stock?") &&
				p.Kafka.TLS.On() && p.Kafka.SASLMechanism == "SCRAM-SHA-512" && p.Registry.LookupOnly && c.PprofAddr == ""
		}},
		{Name: "a key/value DSN", Args: []string{"--postgres-url", "host=db user=stock_cdc sslmode=verify-full", "--postgres-password", `a'b\c`},
			Check: func(c *config) bool {
				return c.PostgresURL == `host=db user=stock_cdc sslmode=verify-full password='a\'b\\c'`
			}},
		{Name: "every problem reported", Args: []string{"--postgres-password", "x", "--postgres-password-file", pgPW,
			"--kafka-sasl-mechanism", "PLAIN", "--kafka-tls-cert-file", certs.ClientCert,
			"--schema-registry-url", "https://u:p@r", "--schema-registry-token", "t"},
			WantErr: []string{"invalid configuration", "--postgres-password: give the secret or a file", "needs a username and a password",
				"both its certificate and its key", "basic auth and a bearer token"}},
		{Name: "two passwords for the database", Env: map[string]string{"STOCK_PG_PASSWORD": "x"},
			WantErr: []string{"--postgres-url holds a password and --postgres-password gives another"}},
	}
	testenv.RunConfigCases(t, tests, parse)
}

// The start line logs the whole pipeline configuration: no secret in it.
func TestStartLogRedactsSecrets(t *testing.T) {
	testenv.ClearStockEnv(t)
	cfg, err := parseConfig([]string{"--postgres-url", "postgres://stock_cdc:pg-s3cret@db/stock?sslpassword=key-s3cret",
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "key", "--kafka-sasl-password", "kafka-s3cret",
		"--schema-registry-url", "https://key:reg-s3cret@registry"}, testenv.Getenv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	slog.New(redact.Handler(&out, slog.LevelInfo)).Info("producer starting", "config", redacted(cfg.pipeline()))
	if strings.Contains(out.String(), "s3cret") {
		t.Fatalf("the start line holds a secret: %s", out.String())
	}
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || !strings.Contains(out.String(), "[redacted]") {
		t.Fatalf("start line %s: %v", out.String(), err)
	}
}

// The profiles are opt-in: the metrics address serves them only when
// --pprof-addr names it; another address gets them alone.
func TestPprofIsOptIn(t *testing.T) {
	reg := prometheus.NewRegistry()
	get := func(muxes map[string]*http.ServeMux, addr, path string) int {
		mux, ok := muxes[addr]
		if !ok {
			return 0
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, path, nil))
		return rec.Code
	}
	off := opsMuxes(&config{MetricsAddr: "m:1"}, reg)
	if get(off, "m:1", "/metrics") != 200 || get(off, "m:1", "/debug/pprof/") != 404 || len(off) != 1 {
		t.Error("by default: /metrics without the profiles")
	}
	same := opsMuxes(&config{MetricsAddr: "m:1", PprofAddr: "m:1"}, reg)
	if get(same, "m:1", "/debug/pprof/") != 200 || len(same) != 1 {
		t.Error("--pprof-addr at the metrics address: both on one listener")
	}
	apart := opsMuxes(&config{MetricsAddr: "m:1", PprofAddr: "p:1"}, reg)
	if get(apart, "p:1", "/debug/pprof/") != 200 || get(apart, "p:1", "/metrics") != 404 || get(apart, "m:1", "/debug/pprof/") != 404 {
		t.Error("--pprof-addr elsewhere: the profiles alone there")
	}
}
