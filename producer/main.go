// Command producer captures inventory_levels from PostgreSQL through logical
// replication and writes stock.levels.v1, stock.changes.v1 and
// stock.alerts.v1 to Kafka, exactly once. This file only wires: config,
// logger, metrics, signals; the pipeline lives in producer/cdc.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/stockpipe/stock/producer/cdc"
	"github.com/stockpipe/stock/producer/status"
)

type cli struct {
	PostgresURL         string        `name:"postgres-url" env:"STOCK_PG_URL" default:"postgres://stock:stock@127.0.0.1:5432/stock?sslmode=disable" help:"Source database (needs the REPLICATION attribute)."`
	Slot                string        `env:"STOCK_SLOT" default:"stock_cdc" help:"Logical replication slot."`
	Publication         string        `env:"STOCK_PUBLICATION" default:"stock_pub" help:"Publication of inventory_levels."`
	Brokers             []string      `env:"STOCK_KAFKA_BROKERS" default:"127.0.0.1:9092" help:"Kafka seed brokers."`
	TopicPrefix         string        `name:"topic-prefix" env:"STOCK_TOPIC_PREFIX" default:"" help:"Prefix for every topic name (tests and side-by-side runs)."`
	Partitions          int32         `env:"STOCK_PARTITIONS" default:"6" help:"Partitions of new topics."`
	ReplicationFactor   int16         `name:"replication-factor" env:"STOCK_REPLICATION_FACTOR" default:"1" help:"Replication factor of new topics."`
	MinInsync           int           `name:"min-insync-replicas" env:"STOCK_MIN_INSYNC_REPLICAS" default:"1" help:"min.insync.replicas of new topics."`
	BatchMaxRecords     int           `name:"batch-max-records" env:"STOCK_BATCH_MAX_RECORDS" default:"20000" help:"Records per Kafka transaction before it is committed."`
	BatchLinger         time.Duration `name:"batch-linger" env:"STOCK_BATCH_LINGER" default:"5ms" help:"Longest a Kafka transaction stays open waiting for more source transactions."`
	SchemaRegistryURL   string        `name:"schema-registry-url" env:"STOCK_SCHEMA_REGISTRY_URL" default:"" help:"Confluent-compatible schema registry; values then carry its schema ids (empty: id 0, the .avsc of this version)."`
	ShutdownTimeout     time.Duration `name:"shutdown-timeout" env:"STOCK_PRODUCER_SHUTDOWN_TIMEOUT" default:"10s" help:"Longest a stop waits for the last Kafka transaction to commit (with Kafka unreachable, the writes it holds are given up then, unconfirmed)."`
	MetricsAddr         string        `name:"metrics-addr" env:"STOCK_PRODUCER_METRICS_ADDR" default:"127.0.0.1:9101" help:"Prometheus /metrics listen address (empty disables)."`
	MemoryLimitMiB      int           `name:"memory-limit-mib" env:"STOCK_PRODUCER_MEMORY_LIMIT_MIB" default:"1024" help:"Soft memory limit for the collector in MiB; raised to twice the live heap when the state needs it (0: none; GOMEMLIMIT wins)."`
	TransactionalID     string        `name:"transactional-id" env:"STOCK_PRODUCER_TRANSACTIONAL_ID" default:"" help:"Kafka transactional id (default: derived from the slot and the topic prefix, so two deployments on one cluster never fence each other)."`
	KafkaMetadataMinAge time.Duration `name:"kafka-metadata-min-age" env:"STOCK_PRODUCER_KAFKA_METADATA_MIN_AGE" default:"50ms" help:"Shortest time between two metadata refreshes of the transactional client: a produce the broker asked to retry waits for one (franz-go's default is 5s)."`
	TakeOverSlot        bool          `name:"take-over-slot" env:"STOCK_PRODUCER_TAKE_OVER_SLOT" help:"Take a slot recorded as another deployment's (or without an owner) and start it over with a snapshot. The other deployment's topics then miss what this one reads."`
	LogLevel            slog.Level    `name:"log-level" env:"STOCK_LOG_LEVEL" default:"info" help:"debug, info, warn or error."`

	Run        struct{}      `cmd:"" default:"1" help:"Capture changes into Kafka until stopped (the default)."`
	Resnapshot resnapshotCmd `cmd:"" help:"Ask the running producer to write the current state of some or all products again, without stopping the stream."`
	Status     struct{}      `cmd:"" help:"Print the slot, its owner in the slot ledger, the last checkpoint and the topics' end offsets, then exit."`
}

type resnapshotCmd struct {
	Products []string `help:"Product ids (comma separated); none means every product."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var c cli
	parser, err := kong.New(&c, kong.Name("producer"), kong.Description("PostgreSQL inventory CDC into Kafka, exactly once."))
	if err != nil {
		return err
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: c.LogLevel}))
	if kctx.Command() == "resnapshot" {
		pos, err := cdc.RequestResnapshot(ctx, c.PostgresURL, c.Resnapshot.Products)
		if err != nil {
			return err
		}
		log.Info("resnapshot requested; the producer writes it when the stream reaches it", "lsn", pos, "products", len(c.Resnapshot.Products))
		return nil
	}

	cfg := cdc.Config{
		PostgresURL:         c.PostgresURL,
		Slot:                c.Slot,
		Publication:         c.Publication,
		Brokers:             c.Brokers,
		Partitions:          c.Partitions,
		ReplicationFactor:   c.ReplicationFactor,
		MinInsyncReplicas:   c.MinInsync,
		BatchMaxRecords:     c.BatchMaxRecords,
		BatchLinger:         c.BatchLinger,
		SchemaRegistryURL:   c.SchemaRegistryURL,
		ShutdownTimeout:     c.ShutdownTimeout,
		TransactionalID:     c.TransactionalID,
		TakeOverSlot:        c.TakeOverSlot,
		KafkaMetadataMinAge: c.KafkaMetadataMinAge,
	}
	if c.TopicPrefix != "" {
		cfg.LevelsTopic = c.TopicPrefix + "stock.levels.v1"
		cfg.ChangesTopic = c.TopicPrefix + "stock.changes.v1"
		cfg.AlertsTopic = c.TopicPrefix + "stock.alerts.v1"
		cfg.CheckpointTopic = c.TopicPrefix + "stock.producer.checkpoints"
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if kctx.Command() == "status" {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return status.Print(sctx, status.Config{PostgresURL: cfg.PostgresURL, Slot: cfg.Slot, Brokers: cfg.Brokers,
			CheckpointTopic: cfg.CheckpointTopic, Topics: []string{cfg.LevelsTopic, cfg.ChangesTopic, cfg.AlertsTopic}}, stdout)
	}
	log.Info("producer starting", "config", redacted(cfg))
	tuneMemory(ctx, log, c.MemoryLimitMiB)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	kmetrics := kprom.NewMetrics("stock_producer_kafka", kprom.Registerer(reg))
	metrics := cdc.NewMetrics(reg)
	pipe, err := cdc.New(cfg, log, metrics, kgo.WithHooks(kmetrics))
	if err != nil {
		return err
	}
	if c.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		// Profiles on the metrics listener (loopback by default): profile
		// before optimising.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		srv := &http.Server{Addr: c.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "error", err)
			}
		}()
		defer srv.Close()
	}

	// A failed run (Kafka or PostgreSQL gone, a fenced transaction) starts
	// over from what Kafka committed; back off so a dead dependency is not
	// hammered.
	const minBackoff, maxBackoff = time.Second, 30 * time.Second
	backoff := minBackoff
	for {
		began := time.Now()
		err := pipe.Run(ctx)
		if time.Since(began) > 2*maxBackoff {
			// A run that streamed for a while ended: a new failure, not
			// the same one again.
			backoff = minBackoff
		}
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			log.Info("producer stopped")
			return nil
		}
		if cdc.Permanent(err) {
			return err
		}
		metrics.RunFailed()
		log.Error("pipeline failed; restarting from kafka", "error", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func redacted(cfg cdc.Config) cdc.Config {
	if i := strings.Index(cfg.PostgresURL, "@"); i > 0 {
		if j := strings.Index(cfg.PostgresURL, "://"); j > 0 && j < i {
			cfg.PostgresURL = cfg.PostgresURL[:j+3] + "***" + cfg.PostgresURL[i:]
		}
	}
	return cfg
}
