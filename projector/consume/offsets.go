package consume

// Offsets a rebuild starts and ends at, and whether a group has any.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// behind counts the records from next up to ends, over every partition.
func behind(next, ends map[int32]int64) int64 {
	var n int64
	for p, e := range ends {
		n += max(e-next[p], 0)
	}
	return n
}

// startOffsets resolves where each partition's replay starts.
func startOffsets(ctx context.Context, adm *kadm.Client, cfg RebuildConfig) (map[int32]int64, error) {
	var listed kadm.ListedOffsets
	var err error
	if !cfg.FromTime.IsZero() {
		listed, err = adm.ListOffsetsAfterMilli(ctx, cfg.FromTime.UnixMilli(), cfg.Topic)
	} else {
		listed, err = adm.ListStartOffsets(ctx, cfg.Topic)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing start offsets of %s: %w", cfg.Topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		return nil, fmt.Errorf("listing start offsets of %s: no partitions (does the topic exist?)", cfg.Topic)
	}
	for p, o := range cfg.FromOffsets {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("rebuilding from offsets: %s has no partition %d", cfg.Topic, p)
		}
		out[p] = max(o, out[p])
	}
	return out, nil
}

// stableOffsets lists each partition's last stable offset: the end of what
// a read_committed reader can see now.
func stableOffsets(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, error) {
	listed, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// HasCommittedOffsets reports whether group has committed offsets for
// topic: whether a projector has already projected records into a cache.
func HasCommittedOffsets(ctx context.Context, brokers []string, group, topic string) (bool, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return false, fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsetsForTopics(ctx, group, topic)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		// The producer has not created the topic yet (a fresh system starts
		// all programs at once): nothing can have been projected from it.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fetching committed offsets of group %s: %w", group, err)
	}
	found := false
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At > 0 {
			found = true
		}
	})
	return found, nil
}

func fmtOffsets(m map[int32]int64) string {
	s := ""
	for _, p := range slices.Sorted(maps.Keys(m)) {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("%d:%d", p, m[p])
	}
	return s
}
