package consume

// The consumer group's committed offsets, read before it joins: they tell a
// first start (nothing projected yet) from a cache Redis lost.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/kafkaconn"
)

// HasCommittedOffsets reports whether group has committed offsets for
// topic: whether a projector has already projected records into a cache.
func HasCommittedOffsets(ctx context.Context, k kafkaconn.Config, group, topic string) (bool, error) {
	opts, err := k.Opts()
	if err != nil {
		return false, err
	}
	cl, err := kgo.NewClient(opts...)
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
