package cdc

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the pipeline, registered on the registerer given to New.
type Metrics struct {
	changesRead     prometheus.Counter
	recordsProduced *prometheus.CounterVec
	kafkaTxns       prometheus.Counter
	sourceTxns      prometheus.Counter
	commitLatency   prometheus.Histogram
	sourceDelay     prometheus.Histogram
	kafkaCommit     prometheus.Histogram
	confirmLagBytes prometheus.Gauge
	slotLagBytes    prometheus.Gauge
	snapshotRows    prometheus.Counter
	stateRows       prometheus.Gauge
	stateProducts   prometheus.Gauge
	bytesPerRow     prometheus.Gauge
	// txnPhase is the time of each phase of a Kafka transaction: handing
	// its records to the client (produce), waiting for their
	// acknowledgements (flush), ending the transaction (end).
	txnPhase *prometheus.HistogramVec
	// txnTotal is a whole Kafka transaction, first record handed to the
	// client to committed: its buckets at 100 and 250 ms count the slow ones.
	txnTotal prometheus.Histogram
	// kafkaTriggers and kafkaMetadata: see kafkaWatch.
	kafkaTriggers *prometheus.CounterVec
	kafkaMetadata prometheus.Histogram
	// lastConfirmed is when the LSN to confirm last moved; runFailures
	// counts runs that ended in an error (each followed by a restart).
	lastConfirmed prometheus.Gauge
	runFailures   prometheus.Counter
	// foreignRecords counts records of the levels and checkpoint topics
	// that the producer's recovery ignored, by topic kind and reason.
	foreignRecords *prometheus.CounterVec
	// slotRepairs counts new snapshots taken because the slot could not be
	// trusted, by reason (advanced by someone else, taken over, lost).
	slotRepairs *prometheus.CounterVec
	// stateRebuilds counts starts that rebuilt the state store from Kafka,
	// by why the store could not be used as it was; stateDiskBytes is its
	// size on disk.
	stateRebuilds  *prometheus.CounterVec
	stateDiskBytes prometheus.Gauge
	// stateSpills counts changes written to the store ahead of Kafka: parts
	// of source transactions whose products outgrew the state's memory.
	stateSpills prometheus.Counter
	// rowsSeen mirrors stateRows for the heartbeat goroutine, which must
	// not touch the state itself.
	rowsSeen atomic.Int64
}

// runFailed counts a run that ended in an error.
func (m *Metrics) runFailed() { m.runFailures.Inc() }

func (m *Metrics) setState(rows, products int) {
	m.stateRows.Set(float64(rows))
	m.stateProducts.Set(float64(products))
	m.rowsSeen.Store(int64(rows))
}

// NewMetrics registers the pipeline's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		changesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stock_producer_changes_read_total", Help: "Row changes read from the replication stream."}),
		recordsProduced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stock_producer_records_produced_total", Help: "Records committed to Kafka, per topic."}, []string{"topic"}),
		kafkaTxns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stock_producer_kafka_transactions_total", Help: "Kafka transactions committed."}),
		sourceTxns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stock_producer_source_transactions_total", Help: "Source transactions written to Kafka."}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stock_producer_commit_to_kafka_seconds", Help: "Time from source commit to Kafka commit, per source transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		sourceDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stock_producer_source_delay_seconds",
			Help:    "Time from source commit to the producer reading that commit from the slot, per source transaction: PostgreSQL's and the network's share of commit_to_kafka (across hosts it includes their clock difference).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		kafkaCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stock_producer_kafka_commit_seconds", Help: "Duration of flushing and committing one Kafka transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		confirmLagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stock_producer_confirm_lag_bytes", Help: "Server WAL end minus the LSN confirmed to PostgreSQL."}),
		slotLagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stock_producer_slot_lag_bytes", Help: "pg_current_wal_lsn() minus the slot's confirmed_flush_lsn."}),
		snapshotRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stock_producer_snapshot_rows_total", Help: "Rows read by snapshots."}),
		stateRows: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stock_producer_state_rows", Help: "Rows held in the per-product state."}),
		stateProducts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stock_producer_state_products", Help: "Products held in the per-product state."}),
		bytesPerRow: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stock_producer_state_bytes_per_row", Help: "Live heap bytes divided by state rows (the state is on disk: this shows the heap does not grow with it)."}),
		txnPhase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stock_producer_kafka_txn_phase_seconds",
			Help: "Time of each phase of a committed Kafka transaction: produce (records handed to the client), flush (waiting for their acknowledgements), end (EndTxn).",
			// 0.1 ms .. 6.5 s
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17)}, []string{"phase"}),
		txnTotal: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stock_producer_kafka_txn_seconds",
			Help:    "A committed Kafka transaction, from its first record handed to the client to the end of its commit.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}),
		kafkaTriggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stock_producer_kafka_metadata_triggers_total",
			Help: "Metadata refreshes the transactional client asked for, by reason; \"produce request had retry batches\" means records waited for a refresh before being retried."},
			[]string{"why"}),
		kafkaMetadata: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stock_producer_kafka_metadata_request_seconds",
			Help:    "Metadata requests of the transactional client and their time, write to read.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		lastConfirmed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stock_producer_last_confirmed_timestamp_seconds",
			Help: "Unix time the LSN the producer confirms to PostgreSQL last moved forward (recorded in the slot ledger, then confirmed within 50 ms); an idle database still moves it with every heartbeat."}),
		runFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stock_producer_run_failures_total",
			Help: "Pipeline runs that ended in an error (Kafka or PostgreSQL unreachable, a fenced or failed Kafka transaction); each is followed by a restart from what Kafka holds."}),
		foreignRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stock_producer_foreign_records_total",
			Help: "Records the producer did not write, ignored while recovering from Kafka, by topic (levels, checkpoints) and reason."},
			[]string{"topic", "reason"}),
		slotRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stock_producer_slot_repairs_total",
			Help: "New snapshots taken because the slot could not be trusted, by reason (advanced_elsewhere, taken_over, lost)."},
			[]string{"reason"}),
		stateRebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stock_producer_state_rebuilds_total",
			Help: "Starts that rebuilt the state store from stock.levels.v1 instead of using it as found, by reason (missing, unclean, behind, ahead, other_owner, format, unreadable, no_checkpoint, corrupt)."},
			[]string{"reason"}),
		stateDiskBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stock_producer_state_disk_bytes", Help: "Size of the state store's files on disk."}),
		stateSpills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stock_producer_state_spills_total",
			Help: "Parts of source transactions whose changed products outgrew the state's memory and went to the state store ahead of Kafka (the store is rebuilt if the producer stops before the transaction's commit)."}),
	}
	reg.MustRegister(m.changesRead, m.recordsProduced, m.kafkaTxns, m.sourceTxns, m.commitLatency, m.sourceDelay,
		m.kafkaCommit, m.confirmLagBytes, m.slotLagBytes, m.snapshotRows, m.stateRows, m.stateProducts, m.bytesPerRow,
		m.foreignRecords, m.slotRepairs, m.txnPhase, m.lastConfirmed, m.runFailures, m.txnTotal, m.kafkaTriggers, m.kafkaMetadata,
		m.stateRebuilds, m.stateDiskBytes, m.stateSpills)
	return m
}
