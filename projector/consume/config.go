package consume

import (
	"errors"
	"fmt"
	"time"

	"github.com/stockpipe/stock/internal/kafkaconn"
)

// Config configures a Consumer.
type Config struct {
	Kafka kafkaconn.Config
	Topic string
	Group string
	// ClientID names the client to the brokers (logs, quotas).
	ClientID string
	// DeadLetterTopic receives the records that do not decode, with the
	// reason in headers. Created at start when missing.
	DeadLetterTopic string
	// AcceptNonTransactional takes records written outside Kafka
	// transactions; by default they are dead-lettered (only the producer
	// writes the topic, always transactionally).
	AcceptNonTransactional bool

	// BatchSize bounds the records applied in one Redis round trip.
	BatchSize int
	// Linger is how long a partition worker waits for more records to fill
	// a batch when fewer than BatchSize are at hand. Zero applies whatever
	// has arrived at once: under load batches fill by themselves while the
	// previous one is applied, and at low load nothing waits.
	Linger time.Duration

	// ApplyTimeout bounds one Redis round trip; CommitTimeout one offset
	// commit.
	ApplyTimeout  time.Duration
	CommitTimeout time.Duration
	// CommitInterval is how often the offsets of applied batches are
	// committed to Kafka, in the background: a worker never waits for a
	// commit (commits of one client are serialised, so partitions committing
	// after every batch waited for each other). A crash replays at most this
	// much more, which Redis skips as stale.
	CommitInterval time.Duration
	// RetryMin and RetryMax bound the backoff between failed applies.
	RetryMin time.Duration
	RetryMax time.Duration
	// DrainTimeout bounds how long shutdown waits for the batches in hand.
	DrainTimeout time.Duration
}

// DeadLetterSuffix makes the default dead-letter topic from the topic.
const DeadLetterSuffix = ".dlq"

// DefaultConfig returns the defaults; callers fill Kafka, Topic, Group and
// DeadLetterTopic (by default Topic + DeadLetterSuffix).
func DefaultConfig() Config {
	return Config{
		ClientID:       "stock-projector",
		BatchSize:      1000,
		ApplyTimeout:   5 * time.Second,
		CommitTimeout:  10 * time.Second,
		CommitInterval: 100 * time.Millisecond,
		RetryMin:       100 * time.Millisecond,
		RetryMax:       5 * time.Second,
		DrainTimeout:   15 * time.Second,
	}
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("no topic"))
	}
	if c.DeadLetterTopic == "" {
		errs = append(errs, errors.New("no dead-letter topic"))
	} else if c.DeadLetterTopic == c.Topic {
		errs = append(errs, errors.New("the dead-letter topic must differ from the topic"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("no consumer group"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch size must be at least 1, got %d", c.BatchSize))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("linger must not be negative, got %s", c.Linger))
	}
	for name, d := range map[string]time.Duration{
		"apply timeout": c.ApplyTimeout, "commit timeout": c.CommitTimeout, "commit interval": c.CommitInterval,
		"retry min": c.RetryMin, "retry max": c.RetryMax, "drain timeout": c.DrainTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("retry max %s is below retry min %s", c.RetryMax, c.RetryMin))
	}
	return errors.Join(errs...)
}
