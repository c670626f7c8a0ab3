// Package status reads the projection's state for an operator at a
// terminal: the consumer group's lag per partition of the levels topic, what
// Redis last applied of each (watermarks), the cache generation and whether a
// projector is alive, and how many dead letters wait.
//
// It only reads: it never joins the group, commits an offset or writes
// Redis, so it is safe to run against production at any time. The
// replication slot is the producer's and is not read here (the projector
// knows nothing of PostgreSQL).
package status

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/projector/dlq"
)

// Config says which projection to read.
type Config struct {
	Kafka           kafkaconn.Config
	Topic           string
	Group           string
	DeadLetterTopic string
}

// Partition is one partition of the levels topic.
type Partition struct {
	Partition int32
	// End is the high watermark; Committed the group's offset (-1: none,
	// the group would start at Start).
	Start, End, Committed int64
	Lag                   int64
	// Owner is the group member consuming it ("" when none).
	Owner string
	// Watermark is what Redis last applied of it (nil: nothing yet).
	Watermark *stockstore.Watermark
}

// Status is the projection at one moment. Errs lists the parts that could
// not be read; the rest is still filled.
type Status struct {
	Topic, Group string
	GroupState   string
	Members      int
	Partitions   []Partition
	Lag          int64

	Prefix     string
	Generation int64
	Pointer    stockstore.PointerState
	Rebuilding bool
	// Heartbeat is when a projector last said it was alive (zero: none
	// within the heartbeat's lifetime).
	Heartbeat time.Time

	DeadLetterTopic string
	DeadLetters     int64
	DeadLetterEnds  map[int32]int64

	Errs []error
}

// Read gathers the status. store must follow the active generation.
func Read(ctx context.Context, cfg Config, store *stockstore.Store) Status {
	s := Status{Topic: cfg.Topic, Group: cfg.Group, Prefix: store.Prefix(), DeadLetterTopic: cfg.DeadLetterTopic}
	fail := func(what string, err error) { s.Errs = append(s.Errs, fmt.Errorf("%s: %w", what, err)) }

	if err := s.readKafka(ctx, cfg); err != nil {
		fail("reading the consumer group", err)
	}
	var err error
	if s.Pointer, err = store.Pointer(ctx); err != nil {
		fail("reading the cache generation", err)
	} else if s.Generation, err = store.ActiveGeneration(ctx); err != nil {
		fail("reading the cache generation", err)
	}
	if s.Rebuilding, err = store.RebuildLocked(ctx); err != nil {
		fail("reading the rebuild lock", err)
	}
	if s.Heartbeat, _, err = store.LastHeartbeat(ctx, cfg.Topic); err != nil {
		fail("reading the heartbeat", err)
	}
	if s.Pointer != stockstore.PointerMissing {
		marks, err := store.Watermarks(ctx, cfg.Topic)
		if err != nil {
			fail("reading watermarks", err)
		}
		for i := range marks {
			if p := s.partition(marks[i].Partition); p != nil {
				p.Watermark = &marks[i]
			}
		}
	}
	if s.DeadLetters, s.DeadLetterEnds, err = dlq.Count(ctx, cfg.Kafka, cfg.DeadLetterTopic); err != nil {
		fail("counting dead letters", err)
	}
	return s
}

func (s *Status) partition(p int32) *Partition {
	for i := range s.Partitions {
		if s.Partitions[i].Partition == p {
			return &s.Partitions[i]
		}
	}
	return nil
}

// readKafka fills the group and its lag per partition.
func (s *Status) readKafka(ctx context.Context, cfg Config) error {
	opts, err := cfg.Kafka.Opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ClientID("stock-projector-status"))...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("listing offsets of %s: %w", cfg.Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("listing offsets of %s: %w", cfg.Topic, err)
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, cfg.Group, cfg.Topic)
	if err != nil {
		return fmt.Errorf("fetching offsets of group %s: %w", cfg.Group, err)
	}
	owners := map[int32]string{}
	groups, err := adm.DescribeGroups(ctx, cfg.Group)
	if err == nil {
		err = groups.Error()
	}
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		// Never joined (or deleted): the lag is the whole topic.
		s.GroupState = "none"
	case err != nil:
		return fmt.Errorf("describing group %s: %w", cfg.Group, err)
	}
	if g, ok := groups[cfg.Group]; ok && err == nil {
		s.GroupState, s.Members = g.State, len(g.Members)
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					if t.Topic == cfg.Topic {
						for _, p := range t.Partitions {
							owners[p] = m.ClientID + "@" + m.ClientHost
						}
					}
				}
			}
		}
	}
	byPart := map[int32]Partition{}
	ends.Each(func(o kadm.ListedOffset) {
		p := Partition{Partition: o.Partition, End: o.Offset, Committed: -1, Owner: owners[o.Partition]}
		if so, ok := starts.Lookup(cfg.Topic, o.Partition); ok {
			p.Start = so.Offset
		}
		p.Lag = p.End - p.Start
		if c, ok := committed.Lookup(cfg.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			p.Committed = c.At
			p.Lag = max(p.End-max(c.At, p.Start), 0)
		}
		byPart[o.Partition] = p
	})
	if len(byPart) == 0 {
		return errors.New("topic " + cfg.Topic + " has no partitions (does it exist?)")
	}
	for _, k := range slices.Sorted(maps.Keys(byPart)) {
		s.Partitions = append(s.Partitions, byPart[k])
		s.Lag += byPart[k].Lag
	}
	return nil
}
