package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/internal/flagenv"
	"github.com/stockpipe/stock/internal/redisconn"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/query-api/api"
)

// config is the query API's whole configuration: flags, each with an
// environment fallback, and defaults for the local stack. The Redis
// connection group is the projector's too (internal/redisconn).
type config struct {
	Addr string `name:"addr" env:"STOCK_API_ADDR" default:"127.0.0.1:8080" help:"HTTP listen address."`

	Redis         redisconn.Config `embed:""`
	LevelsTopic   string           `name:"levels-topic" env:"STOCK_LEVELS_TOPIC" default:"${levels_topic}" help:"Topic the projector consumes, whose watermarks and heartbeat decide freshness and readiness."`
	RedisTimeout  time.Duration    `name:"redis-timeout" env:"STOCK_API_REDIS_TIMEOUT" default:"500ms" help:"Bound of the Redis reads of one request; past it the API answers 503."`
	RedisPoolSize int              `name:"redis-pool-size" env:"STOCK_API_REDIS_POOL_SIZE" default:"0" help:"Redis connections (0: 10 per CPU)."`

	MaxBodyBytes     int64         `name:"max-body-bytes" env:"STOCK_API_MAX_BODY_BYTES" default:"262144" help:"Largest request body; larger get 413."`
	ShutdownTimeout  time.Duration `name:"shutdown-timeout" env:"STOCK_API_SHUTDOWN_TIMEOUT" default:"10s" help:"Bound of draining in-flight requests at shutdown."`
	CacheMaxAge      time.Duration `name:"cache-max-age" env:"STOCK_API_CACHE_MAX_AGE" default:"1s" help:"Cache-Control max-age of stock answers, whole seconds (0: no-cache, clients revalidate with If-None-Match)."`
	MaxLag           time.Duration `name:"max-lag" env:"STOCK_API_MAX_LAG" default:"30s" help:"/readyz fails when the projection applies changes later than this after their source commit (0: not checked)."`
	PublicCap        int64         `name:"public-cap" env:"STOCK_API_PUBLIC_CAP" default:"0" help:"Cap quantities at this number for callers without an API key (0: everyone sees exact numbers)."`
	APIKeys          []string      `name:"api-keys" env:"STOCK_API_KEYS" sep:"," help:"API keys (header X-API-Key) that see exact quantities, comma-separated (prefer the environment)."`
	RateLimit        float64       `name:"rate-limit" env:"STOCK_API_RATE_LIMIT" default:"0" help:"Requests per second allowed per client address on /v1 (0: unlimited); more get 429."`
	RateBurst        int           `name:"rate-burst" env:"STOCK_API_RATE_BURST" default:"100" help:"Requests a client may send at once above the rate limit."`
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
	if c.PublicCap > 0 && len(c.APIKeys) == 0 {
		errs = append(errs, errors.New("a public cap without api keys would hide exact numbers from everyone"))
	}
	for _, k := range c.APIKeys {
		if len(k) < 16 {
			errs = append(errs, errors.New("api keys must be at least 16 characters"))
			break
		}
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
	attrs := append([]any{"addr", c.Addr}, c.Redis.LogAttrs()...)
	return append(attrs, "levels_topic", c.LevelsTopic,
		"redis_timeout", c.RedisTimeout.String(), "redis_pool_size", c.RedisPoolSize,
		"max_body_bytes", c.MaxBodyBytes, "shutdown_timeout", c.ShutdownTimeout.String(), "log_level", c.LogLevel,
		"cache_max_age", c.CacheMaxAge.String(), "max_lag", c.MaxLag.String(), "public_cap", c.PublicCap,
		"api_keys", fmt.Sprintf("[%d redacted]", len(c.APIKeys)), "rate_limit", c.RateLimit, "rate_burst", c.RateBurst,
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
