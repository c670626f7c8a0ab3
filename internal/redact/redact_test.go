package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const pw = "s3cr3t-Pa55"

func TestText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the redacted text; the password must be gone in any case
	}{
		{"postgres URL", "postgres://stock_cdc:" + pw + "@db:5432/stock?sslmode=verify-full",
			"postgres://stock_cdc:[redacted]@db:5432/stock?sslmode=verify-full"},
		{"URL in an error", `connecting to postgres://u:` + pw + `@h/db: refused`, `connecting to postgres://u:[redacted]@h/db: refused`},
		{"registry URL with user info", "https://key:" + pw + "@psrc.example/apis", "https://key:[redacted]@psrc.example/apis"},
		{"query-string password", "postgres://h/db?sslmode=require&password=" + pw + "&x=1",
			"postgres://h/db?sslmode=require&password=[redacted]&x=1"},
		{"key/value DSN", "host=db user=stock password=" + pw + " dbname=stock", "host=db user=stock password=[redacted] dbname=stock"},
		{"quoted DSN value", "host=db password='" + pw + " x' dbname=stock", "host=db password=[redacted] dbname=stock"},
		{"sslpassword", "sslkey=/k.pem sslpassword=" + pw, "sslkey=/k.pem sslpassword=[redacted]"},
		{"qualified key", "sasl.password=" + pw + " STOCK_KAFKA_SASL_PASSWORD=" + pw,
			"sasl.password=[redacted] STOCK_KAFKA_SASL_PASSWORD=[redacted]"},
		{"api key and token", "api_key=" + pw + "&access_token=" + pw, "api_key=[redacted]&access_token=[redacted]"},
		{"bearer", "Authorization: Bearer " + pw, "Authorization: Bearer [redacted]"},
		{"basic", "authorization: basic " + pw, "authorization: basic [redacted]"},
		{"nothing secret", "kafka 127.0.0.1:9092, topic stock.levels.v1", "kafka 127.0.0.1:9092, topic stock.levels.v1"},
		{"URL without user info", "http://127.0.0.1:8081/apis/ccompat/v7", "http://127.0.0.1:8081/apis/ccompat/v7"},
		{"e-mail is not a URL", "owner admin@example.com", "owner admin@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Text(tt.in)
			if got != tt.want {
				t.Errorf("Text(%q)\n = %q\nwant %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, pw) {
				t.Errorf("the password survived: %q", got)
			}
		})
	}
}

func TestSecret(t *testing.T) {
	if Secret("") != "" || Secret(pw) != Mark {
		t.Errorf("Secret: %q %q", Secret(""), Secret(pw))
	}
}

// A secret inside a logged error or string never reaches the output; other
// values pass untouched.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Handler(&buf, slog.LevelInfo))
	log.Info("start", "url", "postgres://u:"+pw+"@h/db", "error", fmt.Errorf("dialing: %w", errors.New("password="+pw)),
		"brokers", []string{"k:9092"}, "n", 3)
	out := buf.String()
	if strings.Contains(out, pw) {
		t.Fatalf("the log holds the password: %s", out)
	}
	for _, want := range []string{`"url":"postgres://u:[redacted]@h/db"`, `"error":"dialing: password=[redacted]"`, `"brokers":["k:9092"]`, `"n":3`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %s lacks %s", out, want)
		}
	}
}
