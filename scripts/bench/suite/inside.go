package suite

// The producer's own account of a phase, read from its metrics before and
// after: Kafka transactions, their time and the slow ones.

import (
	"strconv"

	"github.com/stockpipe/stock/scripts/bench/report"
)

// producerCounters are the producer's own account of where its time goes.
var producerCounters = []string{
	metricChangesRead,
	"stock_producer_kafka_transactions_total", "stock_producer_source_transactions_total",
	"stock_producer_kafka_commit_seconds_sum", "stock_producer_kafka_commit_seconds_count",
	"stock_producer_commit_to_kafka_seconds_sum", "stock_producer_commit_to_kafka_seconds_count",
	"stock_producer_source_delay_seconds_sum", "stock_producer_source_delay_seconds_count",
	metadataRetries,
}

func init() {
	for _, le := range txnBuckets {
		producerCounters = append(producerCounters, txnBucket(le))
	}
}

// txnBuckets are the upper bounds of stock_producer_kafka_txn_seconds.
var txnBuckets = []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}

func txnBucket(le string) string { return `stock_producer_kafka_txn_seconds_bucket{le="` + le + `"}` }

const metadataRetries = `stock_producer_kafka_metadata_triggers_total{why="produce request had retry batches"}`

// producerInside turns two scrapes of producerCounters into the phase's
// figures.
func producerInside(a, b map[string]float64, seconds float64) *report.ProducerInside {
	d := func(k string) float64 { return b[k] - a[k] }
	in := &report.ProducerInside{
		KafkaTxns:  int64(d("stock_producer_kafka_transactions_total")),
		SourceTxns: int64(d("stock_producer_source_transactions_total")),
	}
	if seconds > 0 {
		in.KafkaTxnsPerS = round2(float64(in.KafkaTxns) / seconds)
	}
	if n := d("stock_producer_kafka_commit_seconds_count"); n > 0 {
		in.MeanKafkaCommitMs = round2(d("stock_producer_kafka_commit_seconds_sum") / n * 1e3)
	}
	if seconds > 0 {
		in.CommitShare = round2(d("stock_producer_kafka_commit_seconds_sum") / seconds)
	}
	if n := d("stock_producer_commit_to_kafka_seconds_count"); n > 0 {
		in.MeanCommitToKafkaMs = round2(d("stock_producer_commit_to_kafka_seconds_sum") / n * 1e3)
	}
	if n := d("stock_producer_source_delay_seconds_count"); n > 0 {
		in.MeanSourceDelayMs = round2(d("stock_producer_source_delay_seconds_sum") / n * 1e3)
	}
	all := d(txnBucket("+Inf"))
	in.KafkaTxnsOver100ms = int64(all - d(txnBucket("0.1")))
	in.KafkaTxnsOver250ms = int64(all - d(txnBucket("0.25")))
	// The slowest is in the first bucket whose count reaches them all.
	for _, le := range txnBuckets {
		if all > 0 && d(txnBucket(le)) >= all {
			in.SlowestKafkaTxnLeS, _ = strconv.ParseFloat(le, 64)
			break
		}
	}
	in.MetadataRetries = int64(d(metadataRetries))
	return in
}
