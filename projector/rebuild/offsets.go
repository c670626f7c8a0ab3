package rebuild

// Offsets a rebuild starts and ends at.

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
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
func startOffsets(ctx context.Context, adm *kadm.Client, cfg Config) (map[int32]int64, error) {
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
