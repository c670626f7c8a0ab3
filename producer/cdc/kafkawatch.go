package cdc

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaWatch counts, on the transactional writer's client, what makes a
// Kafka transaction wait inside the client rather than at the broker.
//
// A produce that the broker answers with a retriable error (with
// transaction version 2, CONCURRENT_TRANSACTIONS while the previous
// transaction's markers are being written; NOT_ENOUGH_REPLICAS) is not
// retried after the retry backoff: franz-go marks the partition failing and
// retries only once a metadata refresh has answered, and that refresh waits
// out MetadataMinAge since the previous one. The client logs each such
// trigger at info with its reason ("produce request had retry batches"), and
// no hook sees the produce error codes themselves (they are in the client's
// debug log only), so the triggers are counted from the log by reason, and
// the metadata requests and their time from the broker hook.
type kafkaWatch struct {
	inner    kgo.Logger
	triggers *prometheus.CounterVec
	metadata prometheus.Histogram
}

func newKafkaWatch(inner kgo.Logger, m *Metrics) *kafkaWatch {
	return &kafkaWatch{inner: inner, triggers: m.kafkaTriggers, metadata: m.kafkaMetadata}
}

// OnBrokerE2E implements kgo.HookBrokerE2E.
func (k *kafkaWatch) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key == int16(kmsg.Metadata) && e2e.Err() == nil {
		k.metadata.Observe(e2e.DurationE2E().Seconds())
	}
}

// Level implements kgo.Logger: info, so the client reports its metadata
// triggers; everything else goes on at the inner logger's level.
func (k *kafkaWatch) Level() kgo.LogLevel { return max(kgo.LogLevelInfo, k.inner.Level()) }

// Log implements kgo.Logger.
func (k *kafkaWatch) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if msg == "metadata update triggered" || msg == "immediate metadata update triggered" {
		for i := 0; i+1 < len(keyvals); i += 2 {
			if keyvals[i] == "why" {
				why, _ := keyvals[i+1].(string)
				k.triggers.WithLabelValues(whyLabel(why)).Inc()
			}
		}
	}
	if level <= k.inner.Level() {
		k.inner.Log(level, msg, keyvals...)
	}
}

// whyLabel keeps the label's values few: the client's reasons are fixed
// phrases, some followed by ": <error>".
func whyLabel(why string) string {
	if i := strings.IndexByte(why, ':'); i >= 0 {
		why = why[:i]
	}
	if len(why) > 80 {
		why = why[:80]
	}
	return why
}

var _ kgo.HookBrokerE2E = (*kafkaWatch)(nil)
