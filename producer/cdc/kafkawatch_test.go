package cdc

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

type countingLogger struct{ n int }

func (c *countingLogger) Level() kgo.LogLevel              { return kgo.LogLevelWarn }
func (c *countingLogger) Log(kgo.LogLevel, string, ...any) { c.n++ }

// The client's reasons for a metadata refresh are counted by reason, and
// what the inner logger does not want never reaches it.
func TestKafkaWatchCountsMetadataTriggers(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	inner := &countingLogger{}
	w := newKafkaWatch(inner, m)
	if w.Level() != kgo.LogLevelInfo {
		t.Fatalf("level %v, want info so the triggers are seen", w.Level())
	}
	w.Log(kgo.LogLevelInfo, "metadata update triggered", "why", "produce request had retry batches")
	w.Log(kgo.LogLevelInfo, "metadata update triggered", "why", "re-updating metadata due to err: UNKNOWN_TOPIC_OR_PARTITION")
	w.Log(kgo.LogLevelInfo, "immediate metadata update triggered", "why", "forced load because we are producing to a topic for the first time")
	w.Log(kgo.LogLevelInfo, "something else at info")
	w.Log(kgo.LogLevelWarn, "a warning")
	if got := testutil.ToFloat64(m.kafkaTriggers.WithLabelValues("produce request had retry batches")); got != 1 {
		t.Errorf("retry batches = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.kafkaTriggers.WithLabelValues("re-updating metadata due to err")); got != 1 {
		t.Errorf("errors = %v, want 1 (the error text cut off the label)", got)
	}
	if got := testutil.CollectAndCount(m.kafkaTriggers); got != 3 {
		t.Errorf("%d label values, want 3", got)
	}
	if inner.n != 1 {
		t.Errorf("inner logger got %d lines, want only the warning", inner.n)
	}
}
