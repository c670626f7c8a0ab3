// Package producerbench is `bench producer` (make bench-producer): it
// measures the CDC producer alone on the local stack: snapshot rows/s,
// streaming row changes/s (draining a backlog), and latency from source
// commit to the record being readable in Kafka (read_committed) at a fixed
// rate and at the highest rate the writers reach. It runs the producer
// binary on a slot and topics of its own, so it never disturbs a running
// `make run`, and prints a table plus a JSON file under bench-results/. It
// must never use or drop a slot, publication or topic it did not create.
package producerbench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

type config struct {
	producerBin string
	pgURL       string
	brokers     string
	backlogRows int
	largeTxRows int
	fixedRate   int
	phase       time.Duration
	writers     int
	outDir      string
}

// Run parses the flags of `bench producer` (Go flag syntax, -flag or
// --flag, as since the benchmark's first figures) and runs it.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("bench producer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.producerBin, "producer", ".local/bin/producer", "producer binary")
	fs.StringVar(&c.pgURL, "pg-url", env("STOCK_PG_URL", "postgres://stock:stock@127.0.0.1:5432/stock?sslmode=disable"), "PostgreSQL URL (seeded)")
	fs.StringVar(&c.brokers, "brokers", env("STOCK_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka brokers")
	fs.IntVar(&c.backlogRows, "backlog-rows", 300_000, "row changes written while the producer is stopped, then drained")
	fs.IntVar(&c.largeTxRows, "large-tx-rows", 200_000, "rows updated by the one large transaction of phase 3 (at most the table's rows)")
	fs.IntVar(&c.fixedRate, "rate", 1000, "changes per second of the fixed-rate latency phase")
	fs.DurationVar(&c.phase, "phase", 20*time.Second, "duration of each latency phase")
	fs.IntVar(&c.writers, "writers", 8, "concurrent writer connections")
	fs.StringVar(&c.outDir, "out", "bench-results", "folder for the JSON result")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	return run(ctx, c, stdout)
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// result is what one run measured; it is printed and written as JSON.
type result struct {
	When             time.Time `json:"when"`
	SnapshotRows     int64     `json:"snapshot_rows"`
	SnapshotSeconds  float64   `json:"snapshot_seconds"`
	SnapshotRowsPerS float64   `json:"snapshot_rows_per_second"`
	BacklogRows      int       `json:"backlog_rows"`
	DrainSeconds     float64   `json:"drain_seconds"`
	StreamRowsPerS   float64   `json:"stream_rows_per_second"`
	LargeTxRows      int       `json:"large_tx_rows"`
	LargeTxSeconds   float64   `json:"large_tx_seconds"`
	PeakRSSMiB       float64   `json:"producer_peak_rss_mib"`
	Fixed            latency   `json:"fixed_rate"`
	Max              latency   `json:"max_rate"`
	ProducerCPU      float64   `json:"producer_cpu_seconds"`
	Changes          int64     `json:"changes_total"`
	CPUPerMillion    float64   `json:"producer_cpu_seconds_per_million_changes"`
}

func run(ctx context.Context, c config, out io.Writer) error {
	b, err := newBench(ctx, c, out)
	if err != nil {
		return err
	}
	defer b.close()
	res := result{When: time.Now().UTC()}

	// A producer still running when the run ends early (an error, Ctrl-C)
	// is stopped before b.close drops its slot: it runs in a process group
	// of its own (proc.Start), so the terminal's Ctrl-C does not reach it.
	var p *producer
	defer func() {
		if p != nil {
			_ = p.Stop(stopTimeout)
		}
	}()

	fmt.Fprintln(out, "phase 1: snapshot of the seeded table")
	p, err = b.startProducer(ctx)
	if err != nil {
		return err
	}
	res.SnapshotRows, res.SnapshotSeconds, err = p.snapshotFigures(ctx)
	if err != nil {
		return err
	}
	res.SnapshotRowsPerS = float64(res.SnapshotRows) / res.SnapshotSeconds
	if err := p.stop(); err != nil {
		return err
	}

	fmt.Fprintf(out, "phase 2: drain a backlog of %d row changes\n", c.backlogRows)
	target, err := b.writeBacklog(ctx, c.backlogRows)
	if err != nil {
		return err
	}
	p, err = b.startProducer(ctx)
	if err != nil {
		return err
	}
	started, err := p.streamingStarted(ctx)
	if err != nil {
		return err
	}
	done, err := b.waitConfirmed(ctx, target)
	if err != nil {
		return err
	}
	res.BacklogRows = c.backlogRows
	res.DrainSeconds = done.Sub(started).Seconds()
	res.StreamRowsPerS = float64(c.backlogRows) / res.DrainSeconds

	fmt.Fprintf(out, "phase 3: one transaction updating %d rows\n", c.largeTxRows)
	t0 := time.Now()
	target, n, err := b.largeTx(ctx, c.largeTxRows)
	if err != nil {
		return err
	}
	committed := time.Now()
	if _, err := b.waitConfirmed(ctx, target); err != nil {
		return err
	}
	res.LargeTxRows, res.LargeTxSeconds = n, time.Since(committed).Seconds()
	res.PeakRSSMiB, _ = p.PeakRSSMiB()
	fmt.Fprintf(out, "  (the transaction itself took %.1f s in PostgreSQL)\n", committed.Sub(t0).Seconds())

	// Phases 2 and 3 left half a million dead row versions behind; without
	// this, autovacuum reclaims them in the middle of the latency phases and
	// its I/O and CPU show up as their tail (27 ms instead of 15-18 ms p99
	// at 1,000/s on a quiet machine). Vacuuming here measures the producer
	// at a steady rate, not the clean-up of the bulk phases.
	if err := b.settle(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "phase 4: %d changes/s for %s\n", c.fixedRate, c.phase)
	cpu0, _ := p.cpuSeconds()
	changes0 := b.changes.Load()
	if res.Fixed, err = b.latencyPhase(ctx, c.fixedRate, c.phase); err != nil {
		return err
	}
	fmt.Fprintf(out, "phase 5: open throttle (%d writers) for %s\n", c.writers, c.phase)
	if res.Max, err = b.latencyPhase(ctx, 0, c.phase); err != nil {
		return err
	}
	cpu1, _ := p.cpuSeconds()
	res.ProducerCPU = cpu1 - cpu0
	res.Changes = b.changes.Load() - changes0
	if res.Changes > 0 {
		res.CPUPerMillion = res.ProducerCPU / float64(res.Changes) * 1e6
	}
	if err := p.stop(); err != nil {
		return err
	}
	printResult(out, res)
	return save(out, c.outDir, "producer", res.When, res)
}

func printResult(out io.Writer, r result) {
	fmt.Fprintln(out)
	fmt.Fprintln(out, "producer benchmark (everything on this machine)")
	fmt.Fprintf(out, "  snapshot         %9.0f rows/s   (%d rows in %.2f s)\n", r.SnapshotRowsPerS, r.SnapshotRows, r.SnapshotSeconds)
	fmt.Fprintf(out, "  streaming        %9.0f rows/s   (backlog of %d row changes drained in %.2f s)\n", r.StreamRowsPerS, r.BacklogRows, r.DrainSeconds)
	fmt.Fprintf(out, "  one large tx     %9.0f rows/s   (%d rows drained %.2f s after commit; producer peak RSS %.0f MiB)\n",
		float64(r.LargeTxRows)/r.LargeTxSeconds, r.LargeTxRows, r.LargeTxSeconds, r.PeakRSSMiB)
	for _, l := range []struct {
		name string
		l    latency
	}{{"fixed rate", r.Fixed}, {"max rate", r.Max}} {
		fmt.Fprintf(out, "  %-16s %9.0f changes/s  commit->kafka p50 %6.1f ms  p99 %6.1f ms  p99.9 %6.1f ms  max %6.1f ms  (n=%d)\n",
			l.name, l.l.Rate, l.l.P50, l.l.P99, l.l.P999, l.l.Max, l.l.N)
	}
	fmt.Fprintf(out, "  producer CPU     %9.1f s per million changes (phases 4-5)\n", r.CPUPerMillion)
}

// save writes v as dir/kind-<when>.json.
func save(out io.Writer, dir, kind string, when time.Time, v any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	name := filepath.Join(dir, kind+"-"+when.UTC().Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return errors.Join(fmt.Errorf("writing %s", name), err)
	}
	fmt.Fprintln(out, "  written to", name)
	return nil
}
