// Package cdc runs the producer's pipeline: it recovers what Kafka already
// holds, takes the initial snapshot when the slot is new, then streams
// pgoutput transactions into Kafka transactions and confirms each LSN to
// PostgreSQL only after Kafka committed it. It wires source, state and sink
// and must hold no PostgreSQL or Kafka protocol code itself.
package cdc

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/schemas"
)

// Config of the pipeline. Zero fields take the defaults of SetDefaults,
// the one place they are declared (the producer's flags show them from
// there).
type Config struct {
	PostgresURL string
	Slot        string
	Publication string

	Kafka kafkaconn.Config
	// TransactionalID defaults to one per deployment: the slot, and the
	// checkpoint topic when it is not the default one (the topic prefix).
	TransactionalID   string
	LevelsTopic       string
	ChangesTopic      string
	AlertsTopic       string
	CheckpointTopic   string
	Partitions        int32
	ReplicationFactor int16
	MinInsyncReplicas int
	Retention         time.Duration

	// BatchMaxRecords and BatchLinger bound one Kafka transaction: it is
	// committed at a source commit once it holds this many records or has
	// been open this long, or when the stream goes idle for BatchLinger.
	BatchMaxRecords int
	BatchLinger     time.Duration
	// SnapshotChunk is how many products one snapshot Kafka transaction holds.
	SnapshotChunk     int
	StatusInterval    time.Duration
	HeartbeatInterval time.Duration
	ShutdownTimeout   time.Duration
	// Registry, when its URL is set, registers the value schemas under
	// <topic>-value (BACKWARD) and frames values with the registry's ids;
	// with LookupOnly it only looks the ids up.
	Registry schemas.RegistryConfig
	// Source is the CloudEvents ce_source of every record.
	Source string
	// KafkaMetadataMinAge bounds how long a retried produce waits for the
	// metadata refresh it triggered (see kafkaWatch): franz-go's default,
	// 5 s, was the multi-second tail of a Kafka transaction's flush.
	KafkaMetadataMinAge time.Duration
	// KafkaCompression is the codec of the record batches the producer
	// writes, one of sink.CompressionNames (empty: lz4). Brokers check
	// every batch by decompressing it, so the codec costs them CPU as well
	// as the producer: a backlog drained 11% faster with lz4 than with
	// snappy (franz-go's default), and faster than with none
	// (docs/benchmarks.md).
	KafkaCompression string
	// TakeOverSlot lets this deployment take a slot the ledger records as
	// another's, or one without an owner, starting it over with a snapshot.
	TakeOverSlot bool
	// RestartMin and RestartMax bound Supervise's wait before it starts a
	// failed run over: from RestartMin, doubled after each failure up to
	// RestartMax, so a dead dependency is not hammered.
	RestartMin time.Duration
	RestartMax time.Duration
	// StateDir holds the per-product state (statestore) on local disk, one
	// per deployment: by default .local/producer-state/<transactional id>
	// under the working directory.
	StateDir string
	// StateCacheMiB is the state's memory: Pebble's block cache (a
	// quarter), its two memtables (half) and decoded products (a quarter).
	StateCacheMiB int
}

// DefaultCheckpointTopic is the checkpoint topic without a topic prefix.
const DefaultCheckpointTopic = "stock.producer.checkpoints"

// DefaultConfig is the configuration with every default; its derived fields
// (transactional id, source) follow the default slot.
func DefaultConfig() Config {
	var c Config
	c.SetDefaults()
	return c
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Slot, "stock_cdc")
	def(&c.Publication, "stock_pub")
	def(&c.LevelsTopic, schemas.TopicLevels)
	def(&c.ChangesTopic, schemas.TopicChanges)
	def(&c.AlertsTopic, schemas.TopicAlerts)
	def(&c.CheckpointTopic, DefaultCheckpointTopic)
	if c.CheckpointTopic == DefaultCheckpointTopic {
		// As before deployments had ids of their own, so an upgrade
		// fences what the previous version left open.
		def(&c.TransactionalID, "stock-producer-"+c.Slot)
	}
	def(&c.TransactionalID, "stock-producer-"+c.Slot+"-"+c.CheckpointTopic)
	def(&c.Source, schemas.SourcePrefix+c.Slot)
	def(&c.StateDir, defaultStateDir(c.TransactionalID))
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	// ReplicationFactor and MinInsyncReplicas stay 0 ("auto"): they follow
	// the cluster's size when the topics are ensured
	// (sink.ChooseReplication).
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.BatchMaxRecords == 0 {
		c.BatchMaxRecords = 20_000
	}
	if c.BatchLinger == 0 {
		c.BatchLinger = 5 * time.Millisecond
	}
	if c.SnapshotChunk == 0 {
		c.SnapshotChunk = 5_000
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.KafkaMetadataMinAge == 0 {
		c.KafkaMetadataMinAge = 50 * time.Millisecond
	}
	if c.KafkaCompression == "" {
		c.KafkaCompression = "lz4"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.RestartMin == 0 {
		c.RestartMin = time.Second
	}
	if c.RestartMax == 0 {
		c.RestartMax = 30 * time.Second
	}
	if c.StateCacheMiB == 0 {
		c.StateCacheMiB = 256
	}
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.PostgresURL == "" {
		errs = append(errs, errors.New("postgres url is required"))
	}
	if !identifier.MatchString(c.Slot) {
		errs = append(errs, fmt.Errorf("slot %q: want lower-case letters, digits and _ (at most 63)", c.Slot))
	}
	if !identifier.MatchString(c.Publication) {
		errs = append(errs, fmt.Errorf("publication %q: want lower-case letters, digits and _ (at most 63)", c.Publication))
	}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Registry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions %d: want >= 1", c.Partitions))
	}
	if c.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("replication factor %d: want >= 1, or 0 for the cluster's size", c.ReplicationFactor))
	}
	switch {
	case c.MinInsyncReplicas < 0:
		errs = append(errs, fmt.Errorf("min.insync.replicas %d: want >= 1, or 0 for the replication factor's", c.MinInsyncReplicas))
	case c.ReplicationFactor > 0 && c.MinInsyncReplicas > int(c.ReplicationFactor):
		errs = append(errs, fmt.Errorf("min.insync.replicas %d: want 1..replication factor", c.MinInsyncReplicas))
	case c.ReplicationFactor == 0 && c.MinInsyncReplicas > 3:
		errs = append(errs, fmt.Errorf("min.insync.replicas %d: want 1..3 with the replication factor the cluster's size chooses", c.MinInsyncReplicas))
	}
	if c.BatchMaxRecords < 1 {
		errs = append(errs, fmt.Errorf("batch max records %d: want >= 1", c.BatchMaxRecords))
	}
	if c.BatchLinger < 0 || c.BatchLinger > time.Second {
		errs = append(errs, fmt.Errorf("batch linger %s: want 0..1s", c.BatchLinger))
	}
	if c.SnapshotChunk < 1 {
		errs = append(errs, fmt.Errorf("snapshot chunk %d: want >= 1", c.SnapshotChunk))
	}
	if c.StatusInterval <= 0 || c.HeartbeatInterval <= 0 {
		errs = append(errs, errors.New("status and heartbeat intervals must be positive"))
	}
	if c.KafkaMetadataMinAge < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("kafka metadata min age %s: want >= 10ms (franz-go's floor)", c.KafkaMetadataMinAge))
	}
	if _, ok := sink.Compression(c.KafkaCompression); !ok {
		errs = append(errs, fmt.Errorf("kafka compression %q: want one of %s", c.KafkaCompression, strings.Join(sink.CompressionNames, ", ")))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %s: want >= 0 (0: 10s)", c.ShutdownTimeout))
	}
	if c.RestartMin <= 0 || c.RestartMax < c.RestartMin {
		errs = append(errs, fmt.Errorf("restart backoff %s..%s: want positive, min <= max", c.RestartMin, c.RestartMax))
	}
	if c.StateCacheMiB < 16 {
		errs = append(errs, fmt.Errorf("state cache %d MiB: want >= 16", c.StateCacheMiB))
	}
	return errors.Join(errs...)
}
