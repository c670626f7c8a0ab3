// Package suite runs the benchmark scenarios on the real local stack: it
// starts the programs under test with names of its own (slot, publication,
// topic prefix, consumer group, Redis prefix, ports), drives the warehouse
// simulator through fixed-rate, find-the-max, catch-up and rebuild phases,
// or side by side with Debezium, measures, and removes everything it
// created. It must never touch names it did not make.
package suite

import (
	"errors"
	"fmt"
	"time"
)

// Step is one load phase: a simulator rate for a while.
type Step struct {
	Name       string
	Rate       float64 // write calls per second
	TxMaxCalls int
	Duration   time.Duration
}

// Config of a benchmark run.
type Config struct {
	PGURL     string
	Brokers   []string
	RedisAddr string

	BinDir  string // producer, projector, query-api
	OutDir  string // results JSON
	LogDir  string // per-run process logs
	Command string // how the run was started, for the record

	Products, Warehouses, Workers int
	Partitions                    int

	// ProducerFlags are appended to the producer's command line (tuning
	// experiments: --batch-linger, --batch-max-records).
	ProducerFlags []string

	// Ports of the programs started (loopback).
	ProducerMetrics, ProjectorMetrics, RebuildMetrics, APIAddr string

	Fixed []Step
	// Find-the-max: rates tried in order, each for MaxStep.
	MaxRates      []float64
	MaxStep       time.Duration
	MaxTxMaxCalls int
	// A step is sustained when p99 commit-to-API is at most MaxP99 and the
	// pipeline drains within MaxDrain once the load stops.
	MaxP99   time.Duration
	MaxDrain time.Duration

	// Catch-up: backlog built for Backlog at BacklogRate while the producer
	// is paused (0 skips the phase).
	Backlog     time.Duration
	BacklogRate float64
	Rebuild     bool

	// Sampling: about SamplesPerSecond writes followed end to end, each
	// polled every PollInterval (slower as it ages).
	SamplesPerSecond float64
	PollInterval     time.Duration

	// Peer (Debezium).
	Java          string
	DebeziumLibs  string
	DebeziumConf  string // folder with worker.properties, connector.properties, log4j2.properties
	DebeziumREST  string // host:port of the Connect REST listener
	PeerSteps     []Step
	PeerHeapFlags []string
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.PGURL == "" || len(c.Brokers) == 0 || c.RedisAddr == "" {
		errs = append(errs, errors.New("pg url, brokers and redis address are required"))
	}
	if c.BinDir == "" || c.OutDir == "" || c.LogDir == "" {
		errs = append(errs, errors.New("bin, out and log dirs are required"))
	}
	if c.Products < 1 || c.Warehouses < 2 {
		errs = append(errs, fmt.Errorf("products %d, warehouses %d: want >= 1 and >= 2", c.Products, c.Warehouses))
	}
	for _, s := range append(append([]Step{}, c.Fixed...), c.PeerSteps...) {
		if s.Rate <= 0 || s.Duration <= 0 {
			errs = append(errs, fmt.Errorf("step %s: rate and duration must be positive", s.Name))
		}
	}
	if c.SamplesPerSecond <= 0 || c.PollInterval <= 0 {
		errs = append(errs, errors.New("samples per second and poll interval must be positive"))
	}
	return errors.Join(errs...)
}
