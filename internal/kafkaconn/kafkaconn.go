// Package kafkaconn says how every Kafka client of the project reaches the
// brokers: the connection flags a program embeds (kong `embed:""`), which
// are also the typed config its packages take, and Opts, the options every
// client is built from. Seed brokers today; TLS and SASL go here, so that
// adding them reaches the producer's writer and readers, its status, the
// projector's consumer, rebuild, dead-letter tools and status at once. It
// never creates a client and never reads the environment (flagenv does,
// through the `env` tags).
package kafkaconn

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is where the brokers are and how to talk to them. Flag and
// environment names are the programs' interface (scripts, compose and docs
// use them): never rename them.
type Config struct {
	Brokers []string `name:"brokers" env:"STOCK_KAFKA_BROKERS" default:"127.0.0.1:9092" sep:"," help:"Kafka seed brokers."`
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: no broker"))
	}
	for i, b := range c.Brokers {
		if b == "" {
			errs = append(errs, fmt.Errorf("kafka: broker %d of %d is empty", i+1, len(c.Brokers)))
		}
	}
	return errors.Join(errs...)
}

// Opts are the options every Kafka client starts from; callers append
// their own (client id, group, transactional id, hooks). A fresh slice each
// call, so that one caller's appends never reach another's.
func (c Config) Opts() []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
}

// LogAttrs is c for a start log line; secrets (none yet) are redacted.
func (c Config) LogAttrs() []any {
	return []any{"brokers", c.Brokers}
}
