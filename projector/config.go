package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/internal/flagenv"
	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/redisconn"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/consume"
	"github.com/stockpipe/stock/projector/dlq"
	"github.com/stockpipe/stock/projector/rebuild"
	"github.com/stockpipe/stock/schemas"
)

// config is the projector's whole configuration: flags, each with an
// environment fallback. Defaults the projector's packages declare (consume's
// batches, timeouts, guard and rebuild) reach the flags as variables (vars),
// so that --help shows them and nothing restates them; the connection
// groups are shared with the other programs (internal/kafkaconn,
// internal/redisconn).
type config struct {
	Kafka kafkaconn.Config `embed:""`
	Topic string           `name:"topic" env:"STOCK_LEVELS_TOPIC" default:"${levels_topic}" help:"Topic of product stock snapshots."`
	Group string           `name:"group" env:"STOCK_PROJECTOR_GROUP" default:"stock-projector" help:"Kafka consumer group."`

	Redis redisconn.Config `embed:""`

	BatchSize      int           `name:"batch-size" env:"STOCK_PROJECTOR_BATCH_SIZE" default:"${batch_size}" help:"Most records applied in one Redis round trip."`
	Linger         time.Duration `name:"linger" env:"STOCK_PROJECTOR_LINGER" default:"${linger}" help:"Wait for more records to fill a batch (0: apply what has arrived)."`
	ApplyTimeout   time.Duration `name:"apply-timeout" env:"STOCK_PROJECTOR_APPLY_TIMEOUT" default:"${apply_timeout}" help:"Bound of one Redis round trip."`
	DrainTimeout   time.Duration `name:"drain-timeout" env:"STOCK_PROJECTOR_DRAIN_TIMEOUT" default:"${drain_timeout}" help:"Bound of finishing the batches in hand at shutdown."`
	CommitInterval time.Duration `name:"commit-interval" env:"STOCK_PROJECTOR_COMMIT_INTERVAL" default:"${commit_interval}" help:"How often offsets of applied batches are committed to Kafka (in the background; also on revoke and at shutdown)."`

	// Redis replicates asynchronously: see stockstore.WaitForReplicas.
	RedisWaitReplicas int           `name:"redis-wait-replicas" env:"STOCK_PROJECTOR_REDIS_WAIT_REPLICAS" default:"0" help:"Replicas that must hold a batch (Redis WAIT) before its offsets are committed, so that a failover cannot lose a batch counted as applied; on timeout the batch is retried (0: do not wait, for a Redis without replicas)."`
	RedisWaitTimeout  time.Duration `name:"redis-wait-timeout" env:"STOCK_PROJECTOR_REDIS_WAIT_TIMEOUT" default:"1s" help:"How long a batch waits for --redis-wait-replicas (less than --apply-timeout)."`

	DeadLetterTopic string `name:"dead-letter-topic" env:"STOCK_PROJECTOR_DEAD_LETTER_TOPIC" help:"Topic of bad records: undecodable, breaking the contract, or not the producer's (default: the topic followed by .dlq)."`
	// Only the producer writes the topic, always in Kafka transactions.
	AcceptNonTransactional bool          `name:"accept-non-transactional" env:"STOCK_PROJECTOR_ACCEPT_NON_TRANSACTIONAL" help:"Apply records written outside Kafka transactions or by another writer than the producer (by default they are dead-lettered: only the producer writes the topic, always transactionally, naming itself in ce_source). For topics fed another way."`
	ChangesRetain          int           `name:"changes-retain" env:"STOCK_PROJECTOR_CHANGES_RETAIN" default:"1000000" help:"Entries the change index keeps for incremental sync; older cursors expire."`
	TrimInterval           time.Duration `name:"trim-interval" env:"STOCK_PROJECTOR_TRIM_INTERVAL" default:"10s" help:"How often the change index is trimmed."`
	CacheCheck             time.Duration `name:"cache-check-interval" env:"STOCK_PROJECTOR_CACHE_CHECK_INTERVAL" default:"${cache_check_interval}" help:"How often a quiet projector checks that Redis still holds the cache (a write finds out at once); a lost cache is rebuilt from the topic."`

	MetricsAddr string `name:"metrics-addr" env:"STOCK_PROJECTOR_METRICS_ADDR" default:"127.0.0.1:9102" help:"Address of the /metrics endpoint (empty: none)."`
	LogLevel    string `name:"log-level" env:"STOCK_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level."`

	Run     struct{}     `cmd:"" default:"1" help:"Project the topic into Redis (the default command)."`
	Rebuild rebuildFlags `cmd:"" help:"Replay the topic into a new generation of the cache, switch readers to it, delete the old one."`
	DLQ     dlqCmd       `cmd:"" name:"dlq" help:"List or re-drive dead letters (docs/projector.md)."`
	Status  struct{}     `cmd:"" help:"Print the projection's state: group lag per partition, what Redis applied, cache generation, dead letters. Reads only."`

	command string // the command kong selected
}

// rebuildFlags are the flags of "projector rebuild".
type rebuildFlags struct {
	FromOffsets string        `name:"from-offsets" help:"Start partitions at offsets, as partition:offset,... (others from their start). The new generation holds only what is replayed."`
	FromTime    string        `name:"from-time" help:"Start every partition at the first record at or after this RFC 3339 time."`
	Workers     int           `name:"workers" default:"${rebuild_workers}" help:"Redis round trips in flight during the replay."`
	RetireDelay time.Duration `name:"retire-delay" default:"${rebuild_retire_delay}" help:"How long the old generation stays readable after the switch."`
}

// dlqCmd groups "projector dlq list" and "projector dlq replay".
type dlqCmd struct {
	List   dlqFilterFlags `cmd:"" help:"Print the dead letters (never their values) with why and where they came from."`
	Replay dlqReplayFlags `cmd:"" help:"Apply to Redis the dead letters that now pass the projector's checks; older than Redis changes nothing."`
}

// dlqFilterFlags select dead letters; offsets are the dead-letter topic's.
type dlqFilterFlags struct {
	Reason     []string `name:"reason" sep:"," help:"Only these dlq_reason_code values (comma separated)."`
	Partition  int32    `name:"partition" default:"-1" help:"Only this partition of the dead-letter topic (-1: all)."`
	FromOffset int64    `name:"from-offset" default:"0" help:"First offset to read, included."`
	ToOffset   int64    `name:"to-offset" default:"-1" help:"Last offset to read, included (-1: to the end)."`
}

type dlqReplayFlags struct {
	dlqFilterFlags `embed:""`
	// Records of another writer were never levels of the source.
	AllowUntrusted bool `name:"allow-untrusted" help:"Also apply dead letters refused as not_transactional or not_ours (never the producer's): only for a topic fed another way on purpose."`
	DryRun         bool `name:"dry-run" help:"Check and report, write nothing."`
}

// dlq is the configuration of the dlq commands.
func (c config) dlq(f dlqFilterFlags) dlq.Config {
	return dlq.Config{
		Kafka: c.Kafka, Topic: c.Topic, DeadLetterTopic: c.deadLetterTopic(),
		Filter: dlq.Filter{ReasonCodes: f.Reason, Partition: f.Partition, FromOffset: f.FromOffset, ToOffset: f.ToOffset},
	}
}

// offsets parses --from-offsets.
func (r rebuildFlags) offsets() (map[int32]int64, error) {
	if r.FromOffsets == "" {
		return nil, nil
	}
	out := map[int32]int64{}
	for _, part := range strings.Split(r.FromOffsets, ",") {
		ps, os, ok := strings.Cut(strings.TrimSpace(part), ":")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(os, 10, 64)
		if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("--from-offsets: %q is not partition:offset", part)
		}
		out[int32(p)] = o
	}
	return out, nil
}

func (r rebuildFlags) time() (time.Time, error) {
	if r.FromTime == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, r.FromTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("--from-time: %w", err)
	}
	return t, nil
}

// rebuild is the rebuild configuration.
func (c config) rebuild() (rebuild.Config, error) {
	rc := rebuild.DefaultConfig()
	rc.Kafka = c.Kafka
	rc.Topic = c.Topic
	rc.BatchSize = c.BatchSize
	rc.Workers = c.Rebuild.Workers
	rc.RetireDelay = c.Rebuild.RetireDelay
	rc.AcceptNonTransactional = c.AcceptNonTransactional
	var errs []error
	var err error
	if rc.FromOffsets, err = c.Rebuild.offsets(); err != nil {
		errs = append(errs, err)
	}
	if rc.FromTime, err = c.Rebuild.time(); err != nil {
		errs = append(errs, err)
	}
	return rc, errors.Join(errs...)
}

// Validate reports every problem at once; kong calls it after parsing.
func (c config) Validate() error {
	var errs []error
	if err := c.consume().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Redis.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.RedisWaitReplicas < 0:
		errs = append(errs, fmt.Errorf("redis wait replicas %d: want 0 or more", c.RedisWaitReplicas))
	case c.RedisWaitReplicas > 0 && (c.RedisWaitTimeout <= 0 || c.RedisWaitTimeout >= c.ApplyTimeout):
		errs = append(errs, fmt.Errorf("redis wait timeout %s: want more than 0 and less than the apply timeout %s", c.RedisWaitTimeout, c.ApplyTimeout))
	case c.RedisWaitReplicas > 0 && c.Redis.Cluster:
		errs = append(errs, errors.New("--redis-wait-replicas is not supported on a Redis Cluster yet"))
	}
	if c.ChangesRetain < 1 || c.TrimInterval <= 0 {
		errs = append(errs, errors.New("changes retain and trim interval must be positive"))
	}
	if gc, err := c.guard(); err != nil {
		errs = append(errs, err)
	} else if err := gc.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// guard is the configuration of the lost-cache guard, whose rebuild is the
// rebuild command's (flags of "projector rebuild" at their defaults when
// running).
func (c config) guard() (rebuild.GuardConfig, error) {
	gc := rebuild.DefaultGuardConfig()
	gc.Every = c.CacheCheck
	rc, err := c.rebuild()
	gc.Rebuild = rc
	return gc, err
}

func (c config) consume() consume.Config {
	cc := consume.DefaultConfig()
	cc.Kafka = c.Kafka
	cc.Topic = c.Topic
	cc.Group = c.Group
	cc.DeadLetterTopic = c.deadLetterTopic()
	cc.AcceptNonTransactional = c.AcceptNonTransactional
	cc.BatchSize = c.BatchSize
	cc.Linger = c.Linger
	cc.ApplyTimeout = c.ApplyTimeout
	cc.DrainTimeout = c.DrainTimeout
	cc.CommitInterval = c.CommitInterval
	return cc
}

func (c config) deadLetterTopic() string {
	if c.DeadLetterTopic != "" {
		return c.DeadLetterTopic
	}
	return c.Topic + consume.DeadLetterSuffix
}

// tuneRedis fits the Redis client to the projector: it retries whole
// batches itself, and a longer read timeout than the API's suits big
// pipelines.
func (c config) tuneRedis(rc *stockstore.ClientConfig) {
	rc.ReadTimeout = c.ApplyTimeout
	rc.WriteTimeout = c.ApplyTimeout
}

// logAttrs is the effective configuration for the start log, secrets
// redacted.
func (c config) logAttrs() []any {
	attrs := append(c.Kafka.LogAttrs(), "topic", c.Topic, "group", c.Group)
	attrs = append(attrs, c.Redis.LogAttrs()...)
	return append(attrs,
		"batch_size", c.BatchSize, "linger", c.Linger.String(), "apply_timeout", c.ApplyTimeout.String(),
		"drain_timeout", c.DrainTimeout.String(), "metrics_addr", c.MetricsAddr, "log_level", c.LogLevel,
		"dead_letter_topic", c.deadLetterTopic(), "changes_retain", c.ChangesRetain, "trim_interval", c.TrimInterval.String(),
		"cache_check_interval", c.CacheCheck.String(), "redis_wait_replicas", c.RedisWaitReplicas,
		"redis_wait_timeout", c.RedisWaitTimeout.String(), "command", c.command,
	)
}

func (c config) slogLevel() slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.LogLevel)) // enum-checked by kong
	return l
}

// vars are the defaults of the projector's packages for the flags that
// name them.
func vars() kong.Vars {
	cc, gc, rc := consume.DefaultConfig(), rebuild.DefaultGuardConfig(), rebuild.DefaultConfig()
	return kong.Vars{
		"levels_topic":         schemas.TopicLevels,
		"batch_size":           strconv.Itoa(cc.BatchSize),
		"linger":               cc.Linger.String(),
		"apply_timeout":        cc.ApplyTimeout.String(),
		"drain_timeout":        cc.DrainTimeout.String(),
		"commit_interval":      cc.CommitInterval.String(),
		"cache_check_interval": gc.Every.String(),
		"rebuild_workers":      strconv.Itoa(rc.Workers),
		"rebuild_retire_delay": rc.RetireDelay.String(),
	}
}

// parseConfig fills a config from args, then from getenv for flags not
// given, then from defaults. It returns (nil, nil) after printing help.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (*config, error) {
	cfg := &config{}
	kctx, err := flagenv.Parse(cfg, args, getenv, stdout,
		kong.Name("projector"),
		kong.Description("Projects stock.levels.v1 into the Redis stock cache."),
		vars(), redisconn.Vars(),
	)
	if err != nil || kctx == nil {
		return nil, err
	}
	cfg.command = kctx.Command()
	return cfg, nil
}
