package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
)

// readAll returns every committed record of topic up to its current last
// stable offset, per partition in offset order.
func readAll(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	return readAllOn(t, testenv.KafkaBrokers(), topic)
}

// readAllOn is readAll on the cluster of brokers.
func readAllOn(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	eachRecordOn(t, brokers, topic, func(r *kgo.Record) { out = append(out, r) })
	return out
}

// eachRecord calls fn with every committed record of topic up to its
// current last stable offset, per partition in offset order, without
// holding them.
func eachRecord(t *testing.T, topic string, fn func(*kgo.Record)) {
	t.Helper()
	eachRecordOn(t, testenv.KafkaBrokers(), topic, fn)
}

func eachRecordOn(t *testing.T, brokers []string, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		t.Fatalf("listing offsets of %s: %v", topic, err)
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			target[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for len(target) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: timed out with partitions %v left", topic, target)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := target[r.Partition]
			if !ok {
				return
			}
			if !r.Attrs.IsControl() && r.Offset < end {
				fn(r)
			}
			if r.Offset+1 >= end {
				delete(target, r.Partition)
			}
		})
	}
}
