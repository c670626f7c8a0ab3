package rebuild

import (
	"errors"
	"fmt"
	"time"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/stockstore"
)

// Config configures a rebuild: a replay of the topic, outside any consumer
// group, into a new generation of the cache.
type Config struct {
	Kafka    kafkaconn.Config
	Topic    string
	ClientID string

	// FromOffsets starts the listed partitions at these offsets (the others
	// at their start); FromTime starts every partition at the first record
	// at or after it. Neither: the start of the topic, the only choice that
	// rebuilds every product (the new generation holds only what is
	// replayed).
	FromOffsets map[int32]int64
	FromTime    time.Time

	// BatchSize bounds the records applied in one Redis round trip; Workers
	// is how many round trips run at once (order does not matter: the apply
	// script keeps the newest position whatever the order).
	BatchSize int
	Workers   int
	// ApplyTimeout bounds one round trip; RetryMin and RetryMax the backoff
	// between failed ones.
	ApplyTimeout time.Duration
	RetryMin     time.Duration
	RetryMax     time.Duration
	// Progress is the interval of the progress log line.
	Progress time.Duration
	// RetireDelay is how long the old generation stays after the switch,
	// for readers whose cached generation has not expired yet; at least
	// stockstore.RetireDelay.
	RetireDelay time.Duration
	// AcceptNonTransactional: as consume.Config's.
	AcceptNonTransactional bool
}

// DefaultConfig returns the defaults; callers fill Kafka and Topic.
func DefaultConfig() Config {
	return Config{
		ClientID:     "stock-projector-rebuild",
		BatchSize:    1000,
		Workers:      4,
		ApplyTimeout: 10 * time.Second,
		RetryMin:     100 * time.Millisecond,
		RetryMax:     5 * time.Second,
		Progress:     time.Second,
		RetireDelay:  stockstore.RetireDelay,
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
	if c.BatchSize < 1 || c.Workers < 1 {
		errs = append(errs, fmt.Errorf("batch size and workers must be at least 1, got %d and %d", c.BatchSize, c.Workers))
	}
	if len(c.FromOffsets) > 0 && !c.FromTime.IsZero() {
		errs = append(errs, errors.New("give offsets or a time to rebuild from, not both"))
	}
	if c.ApplyTimeout <= 0 || c.RetryMin <= 0 || c.RetryMax < c.RetryMin || c.Progress <= 0 {
		errs = append(errs, errors.New("apply timeout, retry bounds and progress interval must be positive (retry max >= min)"))
	}
	if c.RetireDelay < stockstore.RetireDelay {
		errs = append(errs, fmt.Errorf("retire delay must be at least %s, got %s", stockstore.RetireDelay, c.RetireDelay))
	}
	return errors.Join(errs...)
}
