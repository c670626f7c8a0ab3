package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/consume"
	"github.com/stockpipe/stock/schemas"
)

// config is the projector's whole configuration: flags, each with an
// environment fallback, and defaults for the local stack.
type config struct {
	Brokers []string `name:"brokers" env:"STOCK_KAFKA_BROKERS" default:"127.0.0.1:9092" sep:"," help:"Kafka seed brokers."`
	Topic   string   `name:"topic" env:"STOCK_LEVELS_TOPIC" default:"${levels_topic}" help:"Topic of product stock snapshots."`
	Group   string   `name:"group" env:"STOCK_PROJECTOR_GROUP" default:"stock-projector" help:"Kafka consumer group."`

	RedisAddr     string `name:"redis-addr" env:"STOCK_REDIS_ADDR" default:"127.0.0.1:6379" help:"Redis address."`
	RedisPassword string `name:"redis-password" env:"STOCK_REDIS_PASSWORD" help:"Redis password (prefer the environment)."`
	RedisPrefix   string `name:"redis-prefix" env:"STOCK_REDIS_PREFIX" default:"${redis_prefix}" help:"Prefix of every Redis key."`

	BatchSize    int           `name:"batch-size" env:"STOCK_PROJECTOR_BATCH_SIZE" default:"1000" help:"Most records applied in one Redis round trip."`
	Linger       time.Duration `name:"linger" env:"STOCK_PROJECTOR_LINGER" default:"0s" help:"Wait for more records to fill a batch (0: apply what has arrived)."`
	ApplyTimeout time.Duration `name:"apply-timeout" env:"STOCK_PROJECTOR_APPLY_TIMEOUT" default:"5s" help:"Bound of one Redis round trip."`
	DrainTimeout time.Duration `name:"drain-timeout" env:"STOCK_PROJECTOR_DRAIN_TIMEOUT" default:"15s" help:"Bound of finishing the batches in hand at shutdown."`

	MetricsAddr string `name:"metrics-addr" env:"STOCK_PROJECTOR_METRICS_ADDR" default:"127.0.0.1:9102" help:"Address of the /metrics endpoint."`
	LogLevel    string `name:"log-level" env:"STOCK_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level."`
}

// Validate reports every problem at once; kong calls it after parsing.
func (c config) Validate() error {
	var errs []error
	if err := c.consume().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.redis().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := stockstore.ValidatePrefix(c.RedisPrefix); err != nil {
		errs = append(errs, err)
	}
	if c.MetricsAddr == "" {
		errs = append(errs, errors.New("no metrics address"))
	}
	return errors.Join(errs...)
}

func (c config) consume() consume.Config {
	cc := consume.DefaultConfig()
	cc.Brokers = c.Brokers
	cc.Topic = c.Topic
	cc.Group = c.Group
	cc.BatchSize = c.BatchSize
	cc.Linger = c.Linger
	cc.ApplyTimeout = c.ApplyTimeout
	cc.DrainTimeout = c.DrainTimeout
	return cc
}

func (c config) redis() stockstore.ClientConfig {
	rc := stockstore.DefaultClientConfig()
	rc.Addrs = []string{c.RedisAddr}
	rc.Password = c.RedisPassword
	// The projector retries whole batches itself; a longer read timeout
	// than the API's suits big pipelines.
	rc.ReadTimeout = c.ApplyTimeout
	rc.WriteTimeout = c.ApplyTimeout
	return rc
}

// logAttrs is the effective configuration for the start log, secrets
// redacted.
func (c config) logAttrs() []any {
	pw := ""
	if c.RedisPassword != "" {
		pw = "[redacted]"
	}
	return []any{
		"brokers", c.Brokers, "topic", c.Topic, "group", c.Group,
		"redis_addr", c.RedisAddr, "redis_password", pw, "redis_prefix", c.RedisPrefix,
		"batch_size", c.BatchSize, "linger", c.Linger.String(), "apply_timeout", c.ApplyTimeout.String(),
		"drain_timeout", c.DrainTimeout.String(), "metrics_addr", c.MetricsAddr, "log_level", c.LogLevel,
	}
}

func (c config) slogLevel() slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.LogLevel)) // enum-checked by kong
	return l
}

// errExit carries a kong exit (after --help) out of parsing without
// os.Exit, so that run stays callable from tests.
type errExit struct{ code int }

// parseConfig fills a config from args, then from getenv for flags not
// given, then from defaults. It returns (nil, nil) after printing help.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (cfg *config, err error) {
	cfg = &config{}
	parser, err := kong.New(cfg,
		kong.Name("projector"),
		kong.Description("Projects stock.levels.v1 into the Redis stock cache."),
		kong.Vars{"levels_topic": schemas.TopicLevels, "redis_prefix": stockstore.DefaultPrefix},
		kong.Writers(stdout, stdout),
		kong.Exit(func(code int) { panic(errExit{code}) }),
		kong.Resolvers(envResolver(getenv)),
	)
	if err != nil {
		return nil, fmt.Errorf("building flag parser: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(errExit)
			if !ok {
				panic(r)
			}
			cfg, err = nil, nil
			if e.code != 0 {
				err = fmt.Errorf("parsing flags: exit %d", e.code)
			}
		}
	}()
	if _, err := parser.Parse(args); err != nil {
		return nil, fmt.Errorf("parsing flags: %w", err)
	}
	return cfg, nil
}

// envResolver makes kong read the `env` of each flag through getenv rather
// than the process environment, so run takes its environment as an argument.
func envResolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, name := range flag.Tag.Envs {
			if v := strings.TrimSpace(getenv(name)); v != "" {
				return v, nil
			}
		}
		return nil, nil
	})
}
