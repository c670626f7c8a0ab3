// Package status prints the producer's side of the pipeline at a glance for
// an operator at a terminal: the slot and what it holds back, who the ledger
// says owns it, the last checkpoint in Kafka, and the end offsets of the
// topics. It only reads.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/source"
)

// Config names what to look at.
type Config struct {
	PostgresURL     string
	Slot            string
	Kafka           kafkaconn.Config
	CheckpointTopic string
	Topics          []string // levels, changes, alerts
}

// Print writes the status to w. Whatever it cannot read is printed as an
// ERROR line, and the error returned says so.
func Print(ctx context.Context, cfg Config, w io.Writer) error {
	var errs []error
	fail := func(what string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
		fmt.Fprintf(w, "ERROR %s: %v\n", what, err)
	}

	conn, err := source.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		fail("postgres", err)
	} else {
		defer conn.Close(context.WithoutCancel(ctx))
		slot, err := source.LookupSlot(ctx, conn, cfg.Slot)
		switch {
		case err != nil:
			fail("slot", err)
		case slot == nil:
			fmt.Fprintf(w, "slot %s: none (the producer creates it at its first start)\n", cfg.Slot)
		default:
			lag, _ := source.SlotLagBytes(ctx, conn, cfg.Slot)
			held := "?"
			if lag != nil {
				held = fmt.Sprintf("%d bytes", *lag)
			}
			fmt.Fprintf(w, "slot %s: active=%v confirmed=%s holds back %s lost=%v\n",
				cfg.Slot, slot.Active, pglogrepl.LSN(slot.ConfirmedFlush), held, slot.Lost)
		}
		owner, err := source.LookupOwner(ctx, conn, cfg.Slot)
		switch {
		case err != nil:
			fail("slot ledger", err)
		case owner == nil:
			fmt.Fprintf(w, "ledger: no owner recorded for %s\n", cfg.Slot)
		default:
			fmt.Fprintf(w, "ledger: owner %q, confirmed at most %s, updated %s\n",
				owner.Deployment, pglogrepl.LSN(owner.ConfirmedLSN), owner.UpdatedAt.UTC().Format(time.RFC3339))
		}
	}

	opts, err := cfg.Kafka.Opts()
	if err != nil {
		fail("kafka", err)
		return errors.Join(errs...)
	}
	cp, ok, err := sink.ReadCheckpoint(ctx, opts, cfg.CheckpointTopic, cfg.Slot, func(*kgo.Record) {})
	switch {
	case err != nil:
		fail("checkpoint", err)
	case !ok:
		fmt.Fprintf(w, "checkpoint: none in %s\n", cfg.CheckpointTopic)
	default:
		fmt.Fprintf(w, "checkpoint: commit %s, snapshot done %v, written %s (%s ago)\n", pglogrepl.LSN(cp.CommitLSN),
			cp.SnapshotDone, cp.WrittenAt.UTC().Format(time.RFC3339), time.Since(cp.WrittenAt).Round(time.Second))
	}

	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fail("kafka", err)
		return errors.Join(errs...)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, cfg.Topics...)
	if err != nil {
		fail("end offsets", err)
		return errors.Join(errs...)
	}
	for _, topic := range cfg.Topics {
		var parts []kadm.ListedOffset
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == topic {
				parts = append(parts, o)
			}
		})
		sort.Slice(parts, func(i, j int) bool { return parts[i].Partition < parts[j].Partition })
		var total int64
		line := ""
		for _, o := range parts {
			if o.Err != nil {
				fail(fmt.Sprintf("end offset of %s/%d", topic, o.Partition), o.Err)
				continue
			}
			total += o.Offset
			line += fmt.Sprintf(" %d:%d", o.Partition, o.Offset)
		}
		fmt.Fprintf(w, "topic %s: end offsets%s (total %d, transaction markers included)\n", topic, line, total)
	}
	return errors.Join(errs...)
}
