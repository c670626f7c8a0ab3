package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/internal/flagenv"
	"github.com/stockpipe/stock/internal/redisconn"
	"github.com/stockpipe/stock/internal/secret"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

// config is the query API's whole configuration: flags, each with an
// environment fallback, and defaults for the local stack. The Redis
// connection group is the projector's too (internal/redisconn).
type config struct {
	Addr        string `name:"addr" env:"STOCK_API_ADDR" default:"127.0.0.1:8080" help:"HTTP listen address."`
	TLSCertFile string `name:"tls-cert-file" env:"STOCK_API_TLS_CERT_FILE" help:"Serve HTTPS with this certificate (PEM, the chain after it); with --tls-key-file. Read at start."`
	TLSKeyFile  string `name:"tls-key-file" env:"STOCK_API_TLS_KEY_FILE" help:"Private key (PEM) of --tls-cert-file."`
	MetricsAddr string `name:"metrics-addr" env:"STOCK_API_METRICS_ADDR" help:"Serve /metrics on this internal address instead of the API's (empty: on the API's address). Give --pprof-addr the same address to put both on one listener."`

	Redis         redisconn.Config `embed:""`
	LevelsTopic   string           `name:"levels-topic" env:"STOCK_LEVELS_TOPIC" default:"${levels_topic}" help:"Topic the projector consumes, whose watermarks and heartbeat decide freshness and readiness."`
	RedisTimeout  time.Duration    `name:"redis-timeout" env:"STOCK_API_REDIS_TIMEOUT" default:"500ms" help:"Bound of the Redis reads of one request; past it the API answers 503."`
	RedisPoolSize int              `name:"redis-pool-size" env:"STOCK_API_REDIS_POOL_SIZE" default:"0" help:"Redis connections (0: 10 per CPU)."`

	MaxBodyBytes     int64         `name:"max-body-bytes" env:"STOCK_API_MAX_BODY_BYTES" default:"262144" help:"Largest request body; larger get 413."`
	ShutdownTimeout  time.Duration `name:"shutdown-timeout" env:"STOCK_API_SHUTDOWN_TIMEOUT" default:"10s" help:"Bound of draining in-flight requests at shutdown."`
	CacheMaxAge      time.Duration `name:"cache-max-age" env:"STOCK_API_CACHE_MAX_AGE" default:"1s" help:"Cache-Control max-age of stock answers, whole seconds (0: no-cache, clients revalidate with If-None-Match)."`
	MaxLag           time.Duration `name:"max-lag" env:"STOCK_API_MAX_LAG" default:"30s" help:"/readyz fails when the projection applies changes later than this after their source commit (0: not checked)."`
	PublicCap        int64         `name:"public-cap" env:"STOCK_API_PUBLIC_CAP" default:"0" help:"Cap quantities at this number for callers without an API key (0: everyone sees exact numbers)."`
	APIKeys          []string      `name:"api-keys" env:"STOCK_API_KEYS" sep:"," help:"API keys (header X-API-Key) that see exact quantities, comma-separated (prefer --api-keys-file or the environment)."`
	APIKeysFile      string        `name:"api-keys-file" env:"STOCK_API_KEYS_FILE" help:"File of API keys, one a line (# comments), read at start; with --api-keys, both count."`
	RequireAPIKey    bool          `name:"require-api-key" env:"STOCK_API_REQUIRE_API_KEY" help:"Refuse every /v1/ request without a valid X-API-Key (401): no public view."`
	RateLimit        float64       `name:"rate-limit" env:"STOCK_API_RATE_LIMIT" default:"0" help:"Requests per second allowed per client address on /v1 (0: unlimited); more get 429."`
	RateBurst        int           `name:"rate-burst" env:"STOCK_API_RATE_BURST" default:"100" help:"Requests a client may send at once above the rate limit."`
	RateLimitClients int           `name:"rate-limit-clients" env:"STOCK_API_RATE_LIMIT_CLIENTS" default:"100000" help:"Most clients the rate limiter tracks (an IPv4 address or IPv6 /64 each); past it, new clients share one bucket, so made-up identities neither grow memory nor get past the limit."`
	TrustedProxies   []string      `name:"trusted-proxies" env:"STOCK_API_TRUSTED_PROXIES" sep:"," help:"Networks (CIDR or address) of the proxies in front of the API whose X-Forwarded-For is believed; empty: the peer address is the client (the header is ignored)."`
	AccessLog        string        `name:"access-log" env:"STOCK_API_ACCESS_LOG" default:"errors" enum:"errors,all,off" help:"Requests logged at info: errors (5xx, 4xx but 404 and 429, and slow ones; the others at debug), all, or off."`
	SlowRequest      time.Duration `name:"slow-request" env:"STOCK_API_SLOW_REQUEST" default:"100ms" help:"Requests taking longer are logged at info as slow (access log errors)."`
	AccessLogMaxRate float64       `name:"access-log-max-rate" env:"STOCK_API_ACCESS_LOG_MAX_RATE" default:"100" help:"Most info lines a second of the errors access log; the next line counts the dropped ones (0: unlimited)."`
	PprofAddr        string        `name:"pprof-addr" env:"STOCK_API_PPROF_ADDR" help:"Serve Go's pprof profiles (/debug/pprof/) on this address, apart from the API (empty: off). Keep it on loopback or a private network."`
	LogLevel         string        `name:"log-level" env:"STOCK_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level (debug also logs the requests the errors access log leaves out)."`
}

// Validate reports every problem at once; kong calls it after parsing.
func (c config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("no listen address"))
	}
	if err := c.Redis.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RedisTimeout <= 0 {
		errs = append(errs, fmt.Errorf("redis timeout must be positive, got %s", c.RedisTimeout))
	}
	if c.RedisPoolSize < 0 {
		errs = append(errs, fmt.Errorf("redis pool size must not be negative, got %d", c.RedisPoolSize))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max body bytes must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout must be positive, got %s", c.ShutdownTimeout))
	}
	if c.CacheMaxAge < 0 || c.CacheMaxAge%time.Second != 0 {
		errs = append(errs, fmt.Errorf("cache max age must be whole seconds, got %s", c.CacheMaxAge))
	}
	if c.MaxLag < 0 {
		errs = append(errs, fmt.Errorf("max lag must not be negative, got %s", c.MaxLag))
	}
	if c.PublicCap < 0 {
		errs = append(errs, fmt.Errorf("public cap must not be negative, got %d", c.PublicCap))
	}
	keys, err := c.apiKeys()
	if err != nil {
		errs = append(errs, err)
	}
	if c.PublicCap > 0 && len(keys) == 0 {
		errs = append(errs, errors.New("a public cap without api keys would hide exact numbers from everyone"))
	}
	if c.RequireAPIKey && len(keys) == 0 {
		errs = append(errs, errors.New("--require-api-key without api keys would refuse every request"))
	}
	for _, k := range keys {
		if len(k) < 16 {
			errs = append(errs, errors.New("api keys must be at least 16 characters"))
			break
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if c.RateLimitClients < 1 {
		errs = append(errs, fmt.Errorf("rate limit clients must be at least 1, got %d", c.RateLimitClients))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-key-file go together"))
	} else if c.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("loading the API's certificate: %w", err))
		}
	}
	if c.MetricsAddr != "" && c.MetricsAddr == c.Addr {
		errs = append(errs, errors.New("--metrics-addr is the API's address: leave it empty to serve /metrics there"))
	}
	if c.SlowRequest <= 0 {
		errs = append(errs, fmt.Errorf("slow request must be positive, got %s", c.SlowRequest))
	}
	if c.AccessLogMaxRate < 0 {
		errs = append(errs, fmt.Errorf("access log max rate must not be negative, got %g", c.AccessLogMaxRate))
	}
	if c.RateLimit < 0 || c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("rate limit must not be negative and rate burst at least 1, got %g and %d", c.RateLimit, c.RateBurst))
	}
	return errors.Join(errs...)
}

// apiKeys are the keys of --api-keys and of --api-keys-file, read now.
func (c config) apiKeys() ([]string, error) {
	keys := slices.Clone(c.APIKeys)
	if c.APIKeysFile != "" {
		more, err := secret.Source{File: c.APIKeysFile}.Lines()
		if err != nil {
			return nil, fmt.Errorf("--api-keys-file: %w", err)
		}
		keys = append(keys, more...)
	}
	return keys, nil
}

// trustedProxies parses --trusted-proxies: networks, or addresses (one
// host each).
func (c config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range c.TrustedProxies {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		} else {
			errs = append(errs, fmt.Errorf("--trusted-proxies: %q is not a network or an address", s))
		}
	}
	return out, errors.Join(errs...)
}

// tuneRedis fits the Redis client to serving requests: no connection wait,
// dial or read may outlast the request's own bound, and a request is not
// retried (the client retries, or gets 503 quickly).
func (c config) tuneRedis(rc *stockstore.ClientConfig) {
	rc.PoolSize = c.RedisPoolSize
	rc.DialTimeout, rc.ReadTimeout, rc.WriteTimeout, rc.PoolTimeout =
		c.RedisTimeout, c.RedisTimeout, c.RedisTimeout, c.RedisTimeout
	rc.MaxRetries = 0
}

// logAttrs is the effective configuration for the start log, secrets
// redacted.
func (c config) logAttrs() []any {
	attrs := append([]any{"addr", c.Addr, "tls_cert_file", c.TLSCertFile, "tls_key_file", c.TLSKeyFile,
		"metrics_addr", c.MetricsAddr}, c.Redis.LogAttrs()...)
	return append(attrs, "levels_topic", c.LevelsTopic,
		"redis_timeout", c.RedisTimeout.String(), "redis_pool_size", c.RedisPoolSize,
		"max_body_bytes", c.MaxBodyBytes, "shutdown_timeout", c.ShutdownTimeout.String(), "log_level", c.LogLevel,
		"cache_max_age", c.CacheMaxAge.String(), "max_lag", c.MaxLag.String(), "public_cap", c.PublicCap,
		"api_keys", fmt.Sprintf("[%d redacted]", len(c.APIKeys)), "api_keys_file", c.APIKeysFile, "require_api_key", c.RequireAPIKey,
		"rate_limit", c.RateLimit, "rate_burst", c.RateBurst, "rate_limit_clients", c.RateLimitClients, "trusted_proxies", c.TrustedProxies,
		"access_log", c.AccessLog, "slow_request", c.SlowRequest.String(), "access_log_max_rate", c.AccessLogMaxRate,
		"pprof_addr", c.PprofAddr,
	)
}

// accessLogMaxRate maps the flag's 0 (unlimited) to what api.Deps takes
// for unlimited.
func (c config) accessLogMaxRate() float64 {
	if c.AccessLogMaxRate == 0 {
		return -1
	}
	return c.AccessLogMaxRate
}

func (c config) slogLevel() slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.LogLevel)) // enum-checked by kong
	return l
}

// parseConfig fills a config from args, then from getenv for flags not
// given, then from defaults. It returns (nil, nil) after printing help.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (*config, error) {
	cfg := &config{}
	kctx, err := flagenv.Parse(cfg, args, getenv, stdout,
		kong.Name("query-api"),
		kong.Description("Serves product stock from the Redis stock cache over HTTP."),
		kong.Vars{"levels_topic": api.DefaultWatermarkTopic}, redisconn.Vars(),
	)
	if err != nil || kctx == nil {
		return nil, err
	}
	return cfg, nil
}
