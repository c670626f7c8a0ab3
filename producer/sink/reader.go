package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTopic reads every committed record of topic, from the start to the
// last stable offset as of the call, calling fn in offset order per
// partition. Records of aborted transactions are skipped. It fails when no
// record arrives for readStall while partitions are short of their end: a
// partial read must never pass for the whole topic.
func ReadTopic(ctx context.Context, opts []kgo.Opt, topic string, fn func(*kgo.Record) error) error {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("creating admin client: %w", err)
	}
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		return fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	target := make(map[int32]int64)
	starts := make(map[int32]kgo.Offset)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			target[o.Partition] = o.Offset
			starts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(target) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records tell us we reached a transaction's end even when
		// the last data record before the target was aborted.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("creating reader for %s: %w", topic, err)
	}
	defer cl.Close()
	for len(target) > 0 {
		pctx, cancel := context.WithTimeout(ctx, readStall)
		fs := cl.PollFetches(pctx)
		stalled := pctx.Err() != nil
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if stalled {
			return fmt.Errorf("reading %s: nothing for %s with partitions short of their end (partition: end offset) %v", topic, readStall, target)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		var rerr error
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := target[r.Partition]
			if !ok || rerr != nil {
				return
			}
			if !r.Attrs.IsControl() && r.Offset < end {
				rerr = fn(r)
			}
			if r.Offset+1 >= end {
				delete(target, r.Partition)
			}
		})
		if rerr != nil {
			return rerr
		}
	}
	return nil
}

// readStall is how long ReadTopic waits for the next record.
const readStall = time.Minute

// ReadCheckpoint returns the latest checkpoint of slot, or ok=false if none
// was ever written. The producer writes checkpoints only inside its Kafka
// transactions: a record of the slot written outside one is not its own and
// is passed to ignored (and otherwise skipped). A transactional one that
// does not decode, or names another slot, is an error: something wrote
// into this deployment's transactions' topic that the producer cannot
// vouch for, and resuming from it could skip real changes.
func ReadCheckpoint(ctx context.Context, opts []kgo.Opt, topic, slot string, ignored func(r *kgo.Record)) (cp Checkpoint, ok bool, err error) {
	err = ReadTopic(ctx, opts, topic, func(r *kgo.Record) error {
		if string(r.Key) != slot {
			return nil
		}
		if !r.Attrs.IsTransactional() {
			ignored(r)
			return nil
		}
		if r.Value == nil {
			// Deleted by an operator: as if none had been written.
			cp, ok = Checkpoint{}, false
			return nil
		}
		c, err := decodeCheckpoint(r.Value)
		if err == nil && c.Slot != slot {
			err = fmt.Errorf("it names slot %q", c.Slot)
		}
		if err != nil {
			return fmt.Errorf("%w: %s/%d@%d under key %q: %v", ErrForgedCheckpoint, r.Topic, r.Partition, r.Offset, slot, err)
		}
		cp, ok = c, true
		return nil
	})
	return cp, ok, err
}

// ErrForgedCheckpoint marks a checkpoint the producer cannot have written.
var ErrForgedCheckpoint = errors.New("checkpoint not written by this producer")
