package consume

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the projection. Kafka client metrics come from kprom.
type metrics struct {
	consumed    prometheus.Counter
	applied     prometheus.Counter
	stale       prometheus.Counter
	superseded  prometheus.Counter
	decodeErrs  prometheus.Counter
	badRecords  *prometheus.CounterVec
	deadLetters prometheus.Counter
	dlqErrs     prometheus.Counter
	applyErrs   prometheus.Counter
	commitErrs  prometheus.Counter
	batchSize   prometheus.Histogram
	applyTime   prometheus.Histogram
	endToEnd    prometheus.Histogram
	consumerLag *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "stock", "projector"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		consumed:   counter("records_consumed_total", "Records read from the levels topic."),
		applied:    counter("snapshots_applied_total", "Product snapshots and tombstones written to Redis."),
		stale:      counter("snapshots_stale_total", "Snapshots skipped because Redis already held the same or a newer position."),
		superseded: counter("records_superseded_total", "Records dropped because a newer record of the same product was in the same batch."),
		decodeErrs: counter("decode_errors_total", "Bad records (undecodable, or not the producer's: see bad_records_total for why), skipped."),
		badRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bad_records_total",
			Help: "Records the producer did not write (not transactional, bad key, undecodable, breaking the contract's bounds), dead-lettered; by reason."},
			[]string{"reason"}),
		deadLetters: counter("dead_lettered_total", "Bad records written to the dead-letter topic."),
		dlqErrs:     counter("dead_letter_errors_total", "Failed writes to the dead-letter topic (each retried)."),
		applyErrs:   counter("apply_errors_total", "Failed Redis round trips (each retried)."),
		commitErrs:  counter("commit_errors_total", "Failed offset commits."),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "batch_records",
			Help:    "Records per applied batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 .. 8192
		}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "apply_duration_seconds",
			Help:    "Time of one successful Redis round trip applying a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1ms .. 3.3s
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "end_to_end_lag_seconds",
			Help:    "From the source transaction's commit time to the snapshot applied in Redis.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20), // 1ms .. 524s
		}),
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "consumer_lag_records",
			Help: "Records between the last fetched offset and the partition's high watermark.",
		}, []string{"topic", "partition"}),
	}
	for _, c := range []prometheus.Collector{
		m.consumed, m.applied, m.stale, m.superseded, m.decodeErrs, m.badRecords, m.deadLetters, m.dlqErrs, m.applyErrs, m.commitErrs,
		m.batchSize, m.applyTime, m.endToEnd, m.consumerLag,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func partitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }
