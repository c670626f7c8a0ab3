// Package sink writes the producer's output to Kafka: it creates or validates
// the topics, writes each batch of source transactions in one Kafka
// transaction together with a checkpoint record, and reads back the
// checkpoint and the compacted levels topic on restart. It knows nothing of
// PostgreSQL.
package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrTopicMismatch is returned when an existing topic's layout differs from
// the configuration.
var ErrTopicMismatch = errors.New("topic does not match the configuration")

// TopicSpec is how a topic must look.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	// Configs must match on an existing topic for the keys listed in
	// mustMatch; the others are only applied at creation.
	Configs map[string]string
}

// keys whose mismatch breaks a guarantee (compaction, durability).
var mustMatch = []string{"cleanup.policy", "min.insync.replicas"}

// EnsureTopics creates missing topics and validates existing ones: partition
// count, replication factor, cleanup policy and min.insync.replicas must
// match, since keys are placed by partition count and the levels topic must
// stay compacted.
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	details, err := adm.ListTopics(ctx, topicNames(specs)...)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	var problems []error
	var existing []TopicSpec
	for _, s := range specs {
		d, ok := details[s.Name]
		if ok && d.Err == nil {
			existing = append(existing, s)
			continue
		}
		if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			problems = append(problems, fmt.Errorf("describing topic %s: %w", s.Name, d.Err))
			continue
		}
		cfg := make(map[string]*string, len(s.Configs))
		for k, v := range s.Configs {
			cfg[k] = kadm.StringPtr(v)
		}
		res, err := adm.CreateTopic(ctx, s.Partitions, s.ReplicationFactor, cfg, s.Name)
		if err == nil {
			err = res.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			// Metadata had not caught up with it (or another producer won the
			// race): it exists with settings we did not choose, so check them.
			existing = append(existing, s)
		case err != nil:
			problems = append(problems, fmt.Errorf("creating topic %s: %w", s.Name, err))
		}
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	// Topics created just now carry our settings; describing them right
	// away can fail while metadata propagates, so only existing ones are
	// checked.
	if len(existing) == 0 {
		return nil
	}
	return validate(ctx, adm, existing)
}

// validate checks existing topics' layout and configs, retrying briefly
// while the broker's metadata catches up with a topic created moments ago.
func validate(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = validateOnce(ctx, adm, specs); err == nil || errors.Is(err, ErrTopicMismatch) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

func validateOnce(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	details, err := adm.ListTopics(ctx, topicNames(specs)...)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	var problems []error
	for _, s := range specs {
		d, ok := details[s.Name]
		if !ok || d.Err != nil {
			return fmt.Errorf("describing topic %s: not visible yet (%v)", s.Name, d.Err)
		}
		if got := int32(len(d.Partitions)); got != s.Partitions {
			problems = append(problems, fmt.Errorf("%w: %s has %d partitions, want %d", ErrTopicMismatch, s.Name, got, s.Partitions))
		}
		if got := int16(d.Partitions.NumReplicas()); got != s.ReplicationFactor {
			problems = append(problems, fmt.Errorf("%w: %s has replication factor %d, want %d", ErrTopicMismatch, s.Name, got, s.ReplicationFactor))
		}
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	return validateConfigs(ctx, adm, specs)
}

func validateConfigs(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	rcs, err := adm.DescribeTopicConfigs(ctx, topicNames(specs)...)
	if err != nil {
		return fmt.Errorf("describing topic configs: %w", err)
	}
	var problems []error
	for _, s := range specs {
		rc, err := rcs.On(s.Name, nil)
		if err != nil {
			return fmt.Errorf("describing config of %s: %w", s.Name, err)
		}
		if rc.Err != nil {
			return fmt.Errorf("describing config of %s: %w", s.Name, rc.Err)
		}
		have := make(map[string]string, len(rc.Configs))
		for _, c := range rc.Configs {
			have[c.Key] = c.MaybeValue()
		}
		for _, k := range mustMatch {
			want, ok := s.Configs[k]
			if !ok {
				continue
			}
			if have[k] != want {
				problems = append(problems, fmt.Errorf("%w: %s has %s=%q, want %q", ErrTopicMismatch, s.Name, k, have[k], want))
			}
		}
	}
	return errors.Join(problems...)
}

// Specs returns the producer's topics: the compacted levels topic, the
// time-retained changes and alerts topics, and the single-partition
// compacted checkpoint topic.
func Specs(levels, changes, alerts, checkpoints string, partitions int32, rf int16, minISR int, retentionMs int64) []TopicSpec {
	isr := strconv.Itoa(minISR)
	ret := strconv.FormatInt(retentionMs, 10)
	return []TopicSpec{
		{Name: levels, Partitions: partitions, ReplicationFactor: rf, Configs: map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": isr,
			// Keep tombstones long enough for a slow replay to see deletions.
			"delete.retention.ms": "86400000",
			// Only closed segments are compacted: roll them hourly or at
			// 64 MiB (not the default 1 GiB / 7 days) so that a replay from
			// offset 0, which rebuilds producer state and the cache, reads
			// about one record per product rather than the whole history.
			"segment.ms":    "3600000",
			"segment.bytes": "67108864",
		}},
		{Name: changes, Partitions: partitions, ReplicationFactor: rf, Configs: map[string]string{
			"cleanup.policy": "delete", "min.insync.replicas": isr, "retention.ms": ret,
		}},
		{Name: alerts, Partitions: partitions, ReplicationFactor: rf, Configs: map[string]string{
			"cleanup.policy": "delete", "min.insync.replicas": isr, "retention.ms": ret,
		}},
		{Name: checkpoints, Partitions: 1, ReplicationFactor: rf, Configs: map[string]string{
			"cleanup.policy": "compact", "min.insync.replicas": isr,
		}},
	}
}

func topicNames(specs []TopicSpec) []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return names
}
