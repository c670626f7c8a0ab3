package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/internal/flagenv"
	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/redact"
	"github.com/stockpipe/stock/internal/secret"
	"github.com/stockpipe/stock/producer/cdc"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/status"
	"github.com/stockpipe/stock/schemas"
)

// config is the producer's whole configuration: flags, each with an
// environment fallback. The pipeline's defaults are declared once, in
// cdc.Config.SetDefaults; the flags name them as variables (vars), so that
// --help shows them and nothing restates them. The program's own defaults
// (database, metrics, memory, log level) are the tags'.
type config struct {
	PostgresURL          string                 `name:"postgres-url" env:"STOCK_PG_URL" default:"postgres://stock:stock@127.0.0.1:5432/stock?sslmode=disable" help:"Source database (needs the REPLICATION attribute). TLS through the URL: sslmode=verify-full&sslrootcert=ca.crt, client certificates with sslcert= and sslkey= (docs/security.md)."`
	PostgresPassword     secret.Value           `name:"postgres-password" env:"STOCK_PG_PASSWORD" help:"Password of the URL's role, instead of one in the URL (prefer --postgres-password-file or the environment)."`
	PostgresPasswordFile string                 `name:"postgres-password-file" env:"STOCK_PG_PASSWORD_FILE" help:"File holding the password of the URL's role, read at start."`
	Slot                 string                 `name:"slot" env:"STOCK_SLOT" default:"${slot}" help:"Logical replication slot."`
	Publication          string                 `name:"publication" env:"STOCK_PUBLICATION" default:"${publication}" help:"Publication of inventory_levels."`
	Kafka                kafkaconn.Config       `embed:""`
	TopicPrefix          string                 `name:"topic-prefix" env:"STOCK_TOPIC_PREFIX" default:"" help:"Prefix for every topic name (tests and side-by-side runs)."`
	Partitions           int32                  `name:"partitions" env:"STOCK_PARTITIONS" default:"${partitions}" help:"Partitions of new topics."`
	ReplicationFactor    int16                  `name:"replication-factor" env:"STOCK_REPLICATION_FACTOR" default:"${replication_factor}" help:"Replication factor of new topics (0: 3 on a cluster of 3 brokers or more, else 1)."`
	MinInsync            int                    `name:"min-insync-replicas" env:"STOCK_MIN_INSYNC_REPLICAS" default:"${min_insync_replicas}" help:"min.insync.replicas of new topics (0: 2 with a replication factor of 3 or more, else 1)."`
	BatchMaxRecords      int                    `name:"batch-max-records" env:"STOCK_BATCH_MAX_RECORDS" default:"${batch_max_records}" help:"Records per Kafka transaction before it is committed."`
	BatchLinger          time.Duration          `name:"batch-linger" env:"STOCK_BATCH_LINGER" default:"${batch_linger}" help:"Longest a Kafka transaction stays open waiting for more source transactions."`
	Registry             schemas.RegistryConfig `embed:""`
	ShutdownTimeout      time.Duration          `name:"shutdown-timeout" env:"STOCK_PRODUCER_SHUTDOWN_TIMEOUT" default:"${shutdown_timeout}" help:"Longest a stop waits for the last Kafka transaction to commit (with Kafka unreachable, the writes it holds are given up then, unconfirmed)."`
	MetricsAddr          string                 `name:"metrics-addr" env:"STOCK_PRODUCER_METRICS_ADDR" default:"127.0.0.1:9101" help:"Prometheus /metrics listen address (empty disables)."`
	PprofAddr            string                 `name:"pprof-addr" env:"STOCK_PRODUCER_PPROF_ADDR" help:"Serve Go's pprof profiles (/debug/pprof/) on this address (empty: off; the metrics address serves both). Keep it on loopback or a private network."`
	MemoryLimitMiB       int                    `name:"memory-limit-mib" env:"STOCK_PRODUCER_MEMORY_LIMIT_MIB" default:"1024" help:"Soft memory limit of the process in MiB: the collector's is this less the state store's memory outside the Go heap, raised to twice the live heap when that needs it (0: none; GOMEMLIMIT wins)."`
	TransactionalID      string                 `name:"transactional-id" env:"STOCK_PRODUCER_TRANSACTIONAL_ID" default:"" help:"Kafka transactional id (default: derived from the slot and the topic prefix, so two deployments on one cluster never fence each other)."`
	KafkaCompression     string                 `name:"kafka-compression" env:"STOCK_PRODUCER_KAFKA_COMPRESSION" default:"${kafka_compression}" enum:"${kafka_compressions}" help:"Codec of the record batches written to Kafka (${kafka_compressions}). The broker decompresses every batch to check it, so a codec costs its CPU as well as ours."`
	KafkaMetadataMinAge  time.Duration          `name:"kafka-metadata-min-age" env:"STOCK_PRODUCER_KAFKA_METADATA_MIN_AGE" default:"${kafka_metadata_min_age}" help:"Shortest time between two metadata refreshes of the transactional client: a produce the broker asked to retry waits for one (franz-go's default is 5s)."`
	TakeOverSlot         bool                   `name:"take-over-slot" env:"STOCK_PRODUCER_TAKE_OVER_SLOT" help:"Take a slot recorded as another deployment's (or without an owner) and start it over with a snapshot. The other deployment's topics then miss what this one reads."`
	StateDir             string                 `name:"state-dir" env:"STOCK_PRODUCER_STATE_DIR" default:"" help:"Folder of the per-product state store on local disk, one per deployment (default: .local/producer-state/<transactional id> under the working directory). Losing it costs a rebuild from Kafka at the next start."`
	StateCacheMiB        int                    `name:"state-cache-mib" env:"STOCK_PRODUCER_STATE_CACHE_MIB" default:"${state_cache_mib}" help:"Memory of the per-product state in MiB: Pebble's block cache (a quarter), its two memtables (half) and decoded products (a quarter)."`
	LogLevel             slog.Level             `name:"log-level" env:"STOCK_LOG_LEVEL" default:"info" help:"debug, info, warn or error."`

	Run        struct{}      `cmd:"" default:"1" help:"Capture changes into Kafka until stopped (the default)."`
	Resnapshot resnapshotCmd `cmd:"" help:"Ask the running producer to write the current state of some or all products again, without stopping the stream."`
	Status     struct{}      `cmd:"" help:"Print the slot, its owner in the slot ledger, the last checkpoint and the topics' end offsets, then exit."`

	command string // the command kong selected
}

type resnapshotCmd struct {
	Products []string `help:"Product ids (comma separated); none means every product."`
}

// vars are the pipeline's defaults for the flags that name them.
func vars() kong.Vars {
	d := cdc.DefaultConfig()
	return kong.Vars{
		"slot":                   d.Slot,
		"publication":            d.Publication,
		"partitions":             strconv.Itoa(int(d.Partitions)),
		"replication_factor":     strconv.Itoa(int(d.ReplicationFactor)),
		"min_insync_replicas":    strconv.Itoa(d.MinInsyncReplicas),
		"batch_max_records":      strconv.Itoa(d.BatchMaxRecords),
		"batch_linger":           d.BatchLinger.String(),
		"shutdown_timeout":       d.ShutdownTimeout.String(),
		"kafka_metadata_min_age": d.KafkaMetadataMinAge.String(),
		"kafka_compression":      d.KafkaCompression,
		"kafka_compressions":     strings.Join(sink.CompressionNames, ","),
		"state_cache_mib":        strconv.Itoa(d.StateCacheMiB),
	}
}

// Validate reports every problem at once; kong calls it after parsing.
func (c config) Validate() error {
	p := c.pipeline()
	_, err := c.postgresURL()
	return errors.Join(p.Validate(), err)
}

func (c config) postgresPassword() secret.Source {
	return secret.Source{Value: c.PostgresPassword, File: c.PostgresPasswordFile}
}

// postgresURL is --postgres-url with the password of --postgres-password
// or its file set in it, read now. pgx takes TLS settings and client
// certificates from the URL itself (sslmode, sslrootcert, sslcert, sslkey).
func (c config) postgresURL() (string, error) {
	pw := c.postgresPassword()
	if err := pw.Validate("--postgres-password"); err != nil || !pw.Set() {
		return c.PostgresURL, err
	}
	p, err := pw.Read()
	if err != nil {
		return "", err
	}
	return withPassword(c.PostgresURL, p)
}

// withPassword sets password in a postgres URL or key/value DSN that has
// none.
func withPassword(dsn, password string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("--postgres-url %s: not a URL", redact.URL(dsn))
		}
		if _, set := u.User.Password(); set || u.Query().Has("password") {
			return "", errors.New("--postgres-url holds a password and --postgres-password gives another: give one")
		}
		u.User = url.UserPassword(u.User.Username(), password)
		return u.String(), nil
	}
	if redact.URL(dsn) != dsn {
		return "", errors.New("--postgres-url holds a password and --postgres-password gives another: give one")
	}
	// A key/value DSN: the value quoted as libpq reads it.
	q := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password)
	return dsn + " password='" + q + "'", nil
}

// pipeline is the pipeline's configuration, defaults and derived names
// filled in.
func (c config) pipeline() cdc.Config {
	p := cdc.Config{
		PostgresURL:         c.PostgresURL,
		Slot:                c.Slot,
		Publication:         c.Publication,
		Kafka:               c.Kafka,
		Partitions:          c.Partitions,
		ReplicationFactor:   c.ReplicationFactor,
		MinInsyncReplicas:   c.MinInsync,
		BatchMaxRecords:     c.BatchMaxRecords,
		BatchLinger:         c.BatchLinger,
		Registry:            c.Registry,
		ShutdownTimeout:     c.ShutdownTimeout,
		TransactionalID:     c.TransactionalID,
		TakeOverSlot:        c.TakeOverSlot,
		KafkaMetadataMinAge: c.KafkaMetadataMinAge,
		KafkaCompression:    c.KafkaCompression,
		StateDir:            c.StateDir,
		StateCacheMiB:       c.StateCacheMiB,
	}
	if c.TopicPrefix != "" {
		p.LevelsTopic = c.TopicPrefix + schemas.TopicLevels
		p.ChangesTopic = c.TopicPrefix + schemas.TopicChanges
		p.AlertsTopic = c.TopicPrefix + schemas.TopicAlerts
		p.CheckpointTopic = c.TopicPrefix + cdc.DefaultCheckpointTopic
	}
	p.SetDefaults()
	return p
}

// status is the configuration of "producer status".
func (c config) status() status.Config {
	p := c.pipeline()
	return status.Config{PostgresURL: p.PostgresURL, Slot: p.Slot, Kafka: p.Kafka,
		CheckpointTopic: p.CheckpointTopic, Topics: []string{p.LevelsTopic, p.ChangesTopic, p.AlertsTopic}}
}

// redacted is the pipeline's configuration for the start log, the
// database password hidden (the Kafka and registry secrets hide
// themselves: secret.Value).
func redacted(cfg cdc.Config) cdc.Config {
	cfg.PostgresURL = redact.URL(cfg.PostgresURL)
	return cfg
}

// parseConfig fills a config from args, then from getenv for flags not
// given, then from defaults. It returns (nil, nil) after printing help.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (*config, error) {
	cfg := &config{}
	kctx, err := flagenv.Parse(cfg, args, getenv, stdout,
		kong.Name("producer"),
		kong.Description("PostgreSQL inventory CDC into Kafka, exactly once."),
		vars(),
	)
	if err != nil || kctx == nil {
		return nil, err
	}
	cfg.command = kctx.Command()
	// Validate read the password once already; this is the value used.
	if cfg.PostgresURL, err = cfg.postgresURL(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}
