// Package report holds the benchmark's results: the JSON written under
// bench-results/ and the one table printed at the end. It must never
// measure anything itself.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stockpipe/stock/scripts/bench/latency"
)

// Machine describes where the figures were taken.
type Machine struct {
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memory_gib"`
	CPUModel  string  `json:"cpu_model"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
}

// ThisMachine reads nproc, memory and the CPU model from /proc.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %f kB", &kb); err == nil {
				m.MemoryGiB = float64(int(kb/1024/1024*10+0.5)) / 10
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Phase is one load phase of the pipeline benchmark.
type Phase struct {
	Name       string  `json:"name"`
	TargetRate float64 `json:"target_calls_per_s"`
	TxMaxCalls int     `json:"tx_max_calls"`
	Seconds    float64 `json:"seconds"`

	Calls       int64   `json:"calls"`
	CallsPerS   float64 `json:"calls_per_s"`
	Behind      int64   `json:"calls_dropped_behind"` // ticks the simulator could not place: the source was saturated
	Failed      int64   `json:"calls_failed"`
	Changes     int64   `json:"row_changes"` // read by the producer from the slot
	ChangesPerS float64 `json:"row_changes_per_s"`

	// KafkaAll: every change record of the phase, source commit to readable
	// (read_committed) in stock.changes.v1.
	KafkaAll latency.Summary `json:"commit_to_kafka_all"`
	// Sampled writes, source commit to: their change record readable, their
	// product snapshot in Redis, the same through the query API.
	Samples   int             `json:"samples"`
	Unmatched int             `json:"samples_unmatched"`
	Kafka     latency.Summary `json:"commit_to_kafka"`
	Redis     latency.Summary `json:"commit_to_redis"`
	API       latency.Summary `json:"commit_to_api"`
	// DrainSeconds: after the load stopped, until every change was in
	// Kafka and every sample visible through the API.
	DrainSeconds float64 `json:"drain_s"`

	CPUSeconds    map[string]float64 `json:"cpu_s"`
	CPUPerMillion map[string]float64 `json:"cpu_s_per_million_changes"`
	// Producer is the producer's own account (its metrics) of the phase.
	Producer *ProducerInside `json:"producer,omitempty"`
	// Sustained (find-the-max steps): p99 commit-to-API <= the bound and
	// the pipeline drained within the bound after the load stopped.
	Sustained bool `json:"sustained"`
}

// ProducerInside is where the producer's time went in a phase, from its
// own metrics: Kafka transactions and how long committing one took.
type ProducerInside struct {
	KafkaTxns           int64   `json:"kafka_transactions"`
	KafkaTxnsPerS       float64 `json:"kafka_transactions_per_s"`
	SourceTxns          int64   `json:"source_transactions"`
	MeanKafkaCommitMs   float64 `json:"mean_kafka_commit_ms"`    // flush + commit of one Kafka transaction
	MeanCommitToKafkaMs float64 `json:"mean_commit_to_kafka_ms"` // its own histogram, per source transaction
	// MeanSourceDelayMs: source commit to the producer reading it from the
	// slot, the part of MeanCommitToKafkaMs that is PostgreSQL's.
	MeanSourceDelayMs float64 `json:"mean_source_delay_ms"`
	// CommitShare: the part of the phase's wall time spent committing Kafka
	// transactions (the stream is not read meanwhile).
	CommitShare float64 `json:"kafka_commit_share_of_wall"`
	// Slow Kafka transactions (first record to committed, the producer's
	// stock_producer_kafka_txn_seconds): how many took over 100 and over
	// 250 ms, and the upper bound of the bucket of the slowest (its
	// histogram's resolution: 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5,
	// 10 s; +Inf past that).
	KafkaTxnsOver100ms int64   `json:"kafka_transactions_over_100ms"`
	KafkaTxnsOver250ms int64   `json:"kafka_transactions_over_250ms"`
	SlowestKafkaTxnLeS float64 `json:"slowest_kafka_transaction_le_s"`
	// MetadataRetries: metadata refreshes the writer's client triggered
	// because a produce had batches to retry (kafkaWatch in the producer).
	MetadataRetries int64 `json:"metadata_refreshes_for_retried_produce"`
}

// SlowTxns is the slow-transaction summary of a phase for the tables.
func (in *ProducerInside) SlowTxns() string {
	if in == nil {
		return "-"
	}
	worst := "-"
	if in.SlowestKafkaTxnLeS > 0 {
		worst = fmt.Sprintf("≤%gms", in.SlowestKafkaTxnLeS*1000)
	}
	return fmt.Sprintf("%d/%d/%s/%d", in.KafkaTxnsOver100ms, in.KafkaTxnsOver250ms, worst, in.MetadataRetries)
}

// Catchup is the pipeline's capacity drain: a backlog built in the slot
// while the producer was paused, then read to the end.
type Catchup struct {
	BacklogSeconds float64 `json:"backlog_build_s"`
	Changes        int64   `json:"row_changes"`
	KafkaSeconds   float64 `json:"to_kafka_s"` // resume to the last change record read
	KafkaPerS      float64 `json:"to_kafka_changes_per_s"`
	E2ESeconds     float64 `json:"to_redis_s"` // resume to projector lag 0
	E2EPerS        float64 `json:"end_to_end_changes_per_s"`
	// CPU from resume to caught up.
	CPUSeconds    map[string]float64 `json:"cpu_s"`
	CPUPerMillion map[string]float64 `json:"cpu_s_per_million_changes"`
	Producer      *ProducerInside    `json:"producer,omitempty"`
}

// Rebuild is a fresh projector (new group, new key prefix) replaying
// stock.levels.v1 from offset 0 to the end.
type Rebuild struct {
	Method  string  `json:"method"`
	Records int64   `json:"records"`
	Seconds float64 `json:"seconds"` // start to exit (or to caught up)
	// SwitchSeconds: start until the replayed cache served readers.
	SwitchSeconds float64 `json:"switch_s"`
	RecordsPerS   float64 `json:"records_per_s"`
	CPUSeconds    float64 `json:"cpu_s"`
}

// Side is one CDC's figures in a side-by-side phase.
type Side struct {
	Records       int64           `json:"records"`
	Latency       latency.Summary `json:"commit_to_kafka"`
	Seconds       float64         `json:"seconds,omitempty"`
	PerS          float64         `json:"records_per_s,omitempty"`
	CPUSeconds    float64         `json:"cpu_s"`
	CPUPerMillion float64         `json:"cpu_s_per_million_changes"`
	// Producer: ours only, its own account of the phase.
	Producer *ProducerInside `json:"producer,omitempty"`
}

// PeerPhase is one phase of the side-by-side with Debezium.
type PeerPhase struct {
	Name       string  `json:"name"`
	TargetRate float64 `json:"target_calls_per_s"`
	TxMaxCalls int     `json:"tx_max_calls"`
	Seconds    float64 `json:"seconds"`
	Ours       Side    `json:"ours"`
	Debezium   Side    `json:"debezium"`
}

// Run is one benchmark run: what the JSON file holds.
type Run struct {
	Kind      string    `json:"kind"` // pipeline or debezium
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
	Seconds   float64   `json:"seconds"`
	Command   string    `json:"command"`
	Machine   Machine   `json:"machine"`
	Settings  any       `json:"settings"`

	Phases  []Phase  `json:"phases,omitempty"`
	MaxStep *Phase   `json:"max_sustained,omitempty"`
	Catchup *Catchup `json:"catchup,omitempty"`
	Rebuild *Rebuild `json:"rebuild,omitempty"`

	Peer []PeerPhase `json:"peer,omitempty"`

	// Load averages (1, 5, 15 min) at start and end: the machine is shared,
	// figures taken under load say so here.
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`

	Notes []string `json:"notes,omitempty"`
}

// LoadAvg returns the 1, 5 and 15 minute load averages.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Write saves the run as dir/<kind>-<time>.json and returns the path.
func (r *Run) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.json", r.Kind, r.StartedAt.UTC().Format("20060102T150405Z")))
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("writing results: %w", err)
	}
	return path, nil
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func pct(s latency.Summary) string {
	if s.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%s/%s/%s/%s/%s", ms(s.P50), ms(s.P95), ms(s.P99), ms(s.P999), ms(s.Max))
}

func num(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Table prints the run as one table.
func (r *Run) Table(w io.Writer) {
	fmt.Fprintf(w, "\n%s benchmark %s — %d CPUs, %.1f GiB, %s; load average %s at start, %s at end\n",
		r.Kind, r.RunID, r.Machine.CPUs, r.Machine.MemoryGiB, r.Machine.CPUModel, r.LoadStart, r.LoadEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	switch r.Kind {
	case "pipeline":
		r.pipelineTable(tw)
	case "debezium":
		r.peerTable(tw)
	}
	tw.Flush()
	if r.Kind == "debezium" {
		fmt.Fprintln(w, "ours ÷ debezium: records/s above 1 favours ours; p99 and cpu-s/M below 1 favour ours.")
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func (r *Run) pipelineTable(tw *tabwriter.Writer) {
	fmt.Fprintln(tw, "phase\ttarget/s\ttx≤\tcalls/s\tchanges/s\tsamples\tcommit→kafka all (ms) p50/p95/p99/p99.9/max\tcommit→kafka sampled\tcommit→redis\tcommit→API\tdrain s\tproducer cpu-s/M\tprojector cpu-s/M\tkafka txns >100ms/>250ms/slowest/meta-retries\tok\t")
	for _, p := range r.Phases {
		ok := ""
		if strings.HasPrefix(p.Name, "max") {
			ok = map[bool]string{true: "yes", false: "no"}[p.Sustained]
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%.0f\t%.0f\t%d\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t\n",
			p.Name, p.TargetRate, p.TxMaxCalls, p.CallsPerS, p.ChangesPerS, p.Samples,
			pct(p.KafkaAll), pct(p.Kafka), pct(p.Redis), pct(p.API), p.DrainSeconds,
			num(p.CPUPerMillion["producer"]), num(p.CPUPerMillion["projector"]), p.Producer.SlowTxns(), ok)
	}
	if m := r.MaxStep; m != nil {
		fmt.Fprintf(tw, "max sustained\t\t\t%.0f\t%.0f\t\t\t\t\t%s\t\t\t\t(%s)\t\n", m.CallsPerS, m.ChangesPerS, pct(m.API), m.Name)
	}
	if c := r.Catchup; c != nil {
		fmt.Fprintf(tw, "catch-up backlog\t\t\t\t%.0f\t\t%d changes: to Kafka %.1f s = %.0f/s; to Redis %.1f s = %.0f/s\t\t\t\t\t%s\t%s\t\t\n",
			c.E2EPerS, c.Changes, c.KafkaSeconds, c.KafkaPerS, c.E2ESeconds, c.E2EPerS,
			num(c.CPUPerMillion["producer"]), num(c.CPUPerMillion["projector"]))
	}
	if b := r.Rebuild; b != nil {
		fmt.Fprintf(tw, "rebuild from offset 0\t\t\t\t\t\t%d records: serving after %.1f s = %.0f records/s (process %.1f s, %.1f cpu-s)\t\t\t\t\t\t\t\t\n",
			b.Records, b.SwitchSeconds, b.RecordsPerS, b.Seconds, b.CPUSeconds)
	}
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func (r *Run) peerTable(tw *tabwriter.Writer) {
	fmt.Fprintln(tw, "phase\twho\trecords\trecords/s\tcommit→kafka (ms) p50/p95/p99/p99.9/max\tcpu-s\tcpu-s/M changes\tkafka txns >100ms/>250ms/slowest/meta-retries\t")
	for _, p := range r.Peer {
		for _, s := range []struct {
			who  string
			side Side
		}{{"ours", p.Ours}, {"debezium", p.Debezium}} {
			perS := s.side.PerS
			if perS == 0 && p.Seconds > 0 {
				perS = float64(s.side.Records) / p.Seconds
			}
			slow := ""
			if s.who == "ours" {
				slow = s.side.Producer.SlowTxns()
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%s\t%.2f\t%s\t%s\t\n", p.Name, s.who, s.side.Records, perS,
				pct(s.side.Latency), s.side.CPUSeconds, num(s.side.CPUPerMillion), slow)
		}
		p99 := "p99 " + ratio(p.Ours.Latency.P99, p.Debezium.Latency.P99)
		if p.Seconds > 0 && p.Ours.Seconds > 0 {
			p99 = "(latency: age of the backlog)" // a drain: records waited while paused
		}
		fmt.Fprintf(tw, "%s\tours ÷ debezium\t\t%s\t%s\t\t%s\t\n", p.Name,
			ratio(p.Ours.PerS, p.Debezium.PerS), p99, ratio(p.Ours.CPUPerMillion, p.Debezium.CPUPerMillion))
	}
}
