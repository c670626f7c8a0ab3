// Package dlq reads the projector's dead letters back: it lists them for an
// operator and re-drives the ones that now pass the projector's checks into
// Redis (Replay), through the same check (consume.SnapshotOf) and the same
// position-checked write (stockstore.Store.Apply) as the live projector.
//
// It must never write to Kafka: the dead-letter topic stays the record of
// what was refused, and replaying it again is harmless because Redis keeps
// only newer positions. It never applies a record that was not the
// producer's (not transactional, another writer's) unless told to.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/projector/consume"
)

// Config says where the dead letters are and which to read.
type Config struct {
	Kafka kafkaconn.Config
	// Topic is the levels topic the dead letters were refused from; a
	// dead letter naming another one is never replayed.
	Topic           string
	DeadLetterTopic string
	Filter          Filter
}

// Filter selects dead letters. Offsets are the dead-letter topic's.
type Filter struct {
	// ReasonCodes keeps only these dlq_reason_code values (empty: all).
	ReasonCodes []string
	// Partition of the dead-letter topic to read; -1 reads all.
	Partition int32
	// FromOffset and ToOffset bound the offsets read, both included; a
	// negative ToOffset reads to the end.
	FromOffset int64
	ToOffset   int64
}

// AllFilter reads every dead letter.
func AllFilter() Filter { return Filter{Partition: -1, ToOffset: -1} }

// reasonCodes are the codes the projector writes (consume.Reason*).
var reasonCodes = []string{
	consume.ReasonNotTransactional, consume.ReasonNotOurs, consume.ReasonBadKey,
	consume.ReasonUndecodable, consume.ReasonBreaksContract, consume.ReasonBadTombstone,
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Topic == "" || c.DeadLetterTopic == "" {
		errs = append(errs, errors.New("no topic or dead-letter topic"))
	}
	for _, r := range c.Filter.ReasonCodes {
		if !slices.Contains(reasonCodes, r) {
			errs = append(errs, fmt.Errorf("unknown reason code %q (known: %v)", r, reasonCodes))
		}
	}
	if c.Filter.FromOffset < 0 || (c.Filter.ToOffset >= 0 && c.Filter.ToOffset < c.Filter.FromOffset) {
		errs = append(errs, fmt.Errorf("offset range %d..%d is empty or negative", c.Filter.FromOffset, c.Filter.ToOffset))
	}
	return errors.Join(errs...)
}

// Letter is one dead letter as read back, with what the projector said of
// it in its dlq_* headers.
type Letter struct {
	// Partition and Offset are the dead letter's own, in the dead-letter
	// topic.
	Partition int32
	Offset    int64
	Key       []byte
	// ReasonCode and Reason are dlq_reason_code and dlq_reason.
	ReasonCode, Reason string
	// From is where the projector read the refused record.
	FromTopic     string
	FromPartition int32
	FromOffset    int64
	// Time is when it was dead-lettered (dlq_time).
	Time time.Time
	// OriginalBytes is set when the record was too large to keep whole
	// and was cut: it cannot be replayed.
	OriginalBytes int64
	Record        *kgo.Record
}

func letterOf(r *kgo.Record) Letter {
	l := Letter{Partition: r.Partition, Offset: r.Offset, Key: r.Key, FromPartition: -1, FromOffset: -1, Record: r}
	// The last of each header wins: the projector appends its dlq_*
	// headers after the record's own (and drops those the record carried).
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case consume.HeaderDLQReasonCode:
			l.ReasonCode = v
		case consume.HeaderDLQReason:
			l.Reason = v
		case consume.HeaderDLQTopic:
			l.FromTopic = v
		case consume.HeaderDLQPartition:
			if p, err := strconv.ParseInt(v, 10, 32); err == nil {
				l.FromPartition = int32(p)
			}
		case consume.HeaderDLQOffset:
			if o, err := strconv.ParseInt(v, 10, 64); err == nil {
				l.FromOffset = o
			}
		case consume.HeaderDLQTime:
			l.Time, _ = time.Parse(time.RFC3339Nano, v)
		case consume.HeaderDLQOriginalBytes:
			l.OriginalBytes, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return l
}

// stallTimeout is how long Read waits for the next record of a partition
// short of its end before it gives up.
const stallTimeout = 30 * time.Second

// newClient is the one constructor of this package's Kafka client.
func newClient(k kafkaconn.Config) (*kgo.Client, error) {
	opts, err := k.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ClientID("stock-projector-dlq"))...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	return cl, nil
}

// Read calls fn with every dead letter the filter selects, each partition
// in offset order, up to the end offsets it found when it started (dead
// letters written meanwhile wait for the next run). A missing dead-letter
// topic holds none.
func Read(ctx context.Context, cfg Config, fn func(Letter) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cl, err := newClient(cfg.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	starts, ends, err := bounds(ctx, kadm.NewClient(cl), cfg.DeadLetterTopic)
	if err != nil || len(ends) == 0 {
		return err
	}
	f := cfg.Filter
	from := map[int32]kgo.Offset{}
	todo := map[int32]int64{} // partition -> offset past the last to read
	for p, end := range ends {
		if f.Partition >= 0 && p != f.Partition {
			continue
		}
		start := max(starts[p], f.FromOffset)
		if f.ToOffset >= 0 {
			end = min(end, f.ToOffset+1)
		}
		if start < end {
			from[p] = kgo.NewOffset().At(start)
			todo[p] = end
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{cfg.DeadLetterTopic: from})
	lastRecord := time.Now()
	for len(todo) > 0 {
		// Records deleted by retention while we read would leave a
		// partition short of its end for ever: give up instead of hanging.
		if time.Since(lastRecord) > stallTimeout {
			return fmt.Errorf("reading %s: no record for %s while partitions are short of their end offsets %v",
				cfg.DeadLetterTopic, stallTimeout, todo)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("reading %s: %w", cfg.DeadLetterTopic, ctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && ferr == nil {
				ferr = fmt.Errorf("reading %s: %w", cfg.DeadLetterTopic, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		if !fs.Empty() {
			lastRecord = time.Now()
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := todo[r.Partition]
			if ferr != nil || !ok || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(todo, r.Partition)
			}
			l := letterOf(r)
			if len(f.ReasonCodes) == 0 || slices.Contains(f.ReasonCodes, l.ReasonCode) {
				ferr = fn(l)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// Count returns how many dead letters the topic holds (end minus start
// offsets, so what retention removed is not counted) and its end offsets,
// whose growth is every dead letter ever written.
func Count(ctx context.Context, k kafkaconn.Config, topic string) (held int64, ends map[int32]int64, err error) {
	cl, err := newClient(k)
	if err != nil {
		return 0, nil, err
	}
	defer cl.Close()
	starts, ends, err := bounds(ctx, kadm.NewClient(cl), topic)
	for p, e := range ends {
		held += e - starts[p]
	}
	return held, ends, err
}

// bounds lists a topic's start and end offsets; none for a missing topic.
func bounds(ctx context.Context, adm *kadm.Client, topic string) (starts, ends map[int32]int64, err error) {
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		listed, err := f(ctx, topic)
		if err == nil {
			err = listed.Error()
		}
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
		}
		out := map[int32]int64{}
		listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		return out, nil
	}
	if starts, err = list(adm.ListStartOffsets); err != nil {
		return nil, nil, err
	}
	ends, err = list(adm.ListEndOffsets)
	return starts, ends, err
}
