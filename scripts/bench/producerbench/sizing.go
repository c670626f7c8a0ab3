package producerbench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/scripts/bench/summary"
)

// `bench sizing` (make bench-sizing) measures what the size of the catalog
// does to the producer, for one or more producer binaries side by side (the
// design of today and the one before it): on the seeded database as it is,
// a first start (snapshot rows/s, time to streaming, peak RSS), streaming at
// the writers' maximum over the whole catalog, a clean restart, and a
// restart with the state store removed (its rebuild from Kafka). Each run
// starts every binary afresh on a slot, topics and store of its own, in an
// order rotated per run, and the table gives median (min-max), n per figure
// (summary.Of, as bench summarize).
// A binary whose resident memory passes --rss-cap-mib is killed, and the run
// says how far its snapshot had come: that is the figure for a design that
// does not fit the machine.

type sizingConfig struct {
	producers []binary
	pgURL     string
	brokers   string
	runs      int
	phase     time.Duration
	writers   int
	rssCapMiB float64
	outDir    string
}

type binary struct{ label, path string }

type binaries []binary

func (b *binaries) String() string { return fmt.Sprint(*b) }

func (b *binaries) Set(v string) error {
	label, path, ok := strings.Cut(v, "=")
	if !ok || label == "" || path == "" {
		return fmt.Errorf("want label=path, got %q", v)
	}
	*b = append(*b, binary{label, path})
	return nil
}

// sizingRun is one binary's figures in one run; the phases after a cap are
// zero.
type sizingRun struct {
	Label            string  `json:"label"`
	Run              int     `json:"run"`
	SnapshotRows     int64   `json:"snapshot_rows"`
	SnapshotRowsPerS float64 `json:"snapshot_rows_per_second"`
	FirstStartS      float64 `json:"first_start_to_streaming_seconds"`
	FirstStartRSS    float64 `json:"first_start_peak_rss_mib"`
	StreamChangesPS  float64 `json:"streaming_changes_per_second"`
	StreamP99Ms      float64 `json:"streaming_commit_to_kafka_p99_ms"`
	StreamRSS        float64 `json:"streaming_peak_rss_mib"`
	RestartS         float64 `json:"restart_seconds"`
	RestartRSS       float64 `json:"restart_peak_rss_mib"`
	RebuildS         float64 `json:"store_lost_restart_seconds,omitempty"`
	RebuildRSS       float64 `json:"store_lost_restart_peak_rss_mib,omitempty"`
	Capped           string  `json:"capped,omitempty"`
}

// RunSizing parses the flags of `bench sizing` and runs it.
func RunSizing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c sizingConfig
	var bins binaries
	fs := flag.NewFlagSet("bench sizing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&bins, "producer", "label=path of a producer binary (repeatable; default now=.local/bin/producer)")
	fs.StringVar(&c.pgURL, "pg-url", env("STOCK_PG_URL", "postgres://stock:stock@127.0.0.1:5432/stock?sslmode=disable"), "PostgreSQL URL (seeded)")
	fs.StringVar(&c.brokers, "brokers", env("STOCK_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka brokers")
	fs.IntVar(&c.runs, "runs", 3, "runs; each starts every binary afresh")
	fs.DurationVar(&c.phase, "phase", 30*time.Second, "duration of the streaming phase at the writers' maximum")
	fs.IntVar(&c.writers, "writers", 8, "concurrent writer connections")
	fs.Float64Var(&c.rssCapMiB, "rss-cap-mib", 16384, "kill a producer whose peak RSS passes this (0: no cap)")
	fs.StringVar(&c.outDir, "out", "bench-results", "folder for the JSON result")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(bins) == 0 {
		bins = binaries{{"now", ".local/bin/producer"}}
	}
	c.producers = bins
	if c.runs < 1 {
		return fmt.Errorf("runs must be at least 1, got %d", c.runs)
	}
	var all []sizingRun
	for run := 1; run <= c.runs; run++ {
		for i := range c.producers {
			bin := c.producers[(i+run-1)%len(c.producers)]
			fmt.Fprintf(stdout, "run %d/%d: %s (%s)\n", run, c.runs, bin.label, bin.path)
			r, err := sizeOne(ctx, c, bin, stdout)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", run, bin.label, err)
			}
			r.Run = run
			all = append(all, r)
		}
	}
	printSizing(stdout, c.producers, all)
	return save(stdout, c.outDir, "producer-sizing", time.Now(), all)
}

// hasStateStore tells a binary of today's design from one before it by its
// help text.
func hasStateStore(path string) bool {
	out, _ := exec.Command(path, "--help").CombinedOutput()
	return strings.Contains(string(out), "--state-dir")
}

func sizeOne(ctx context.Context, c sizingConfig, bin binary, out io.Writer) (sizingRun, error) {
	r := sizingRun{Label: bin.label}
	b, err := newBench(ctx, config{producerBin: bin.path, pgURL: c.pgURL, brokers: c.brokers, writers: c.writers}, out)
	if err != nil {
		return r, err
	}
	defer b.close()
	b.stateless = !hasStateStore(bin.path)
	b.logWait = 2 * time.Hour

	var p *producer
	defer func() {
		if p != nil {
			_ = p.Stop(stopTimeout)
		}
	}()
	// start runs the producer until it streams and returns the seconds
	// from the process's start; a cap reached on the way ends the run.
	start := func() (float64, error) {
		t0 := time.Now()
		p, err = b.startProducer(ctx)
		if err != nil {
			return 0, err
		}
		capped := b.watchRSS(ctx, p, c.rssCapMiB)
		started, err := p.streamingStarted(ctx)
		if msg := capped(); msg != "" {
			r.Capped = msg
			return 0, nil
		}
		return started.Sub(t0).Seconds(), err
	}
	peak := func() float64 { v, _ := p.PeakRSSMiB(); return v }

	fmt.Fprintln(out, "  first start: snapshot of the seeded table")
	if r.FirstStartS, err = start(); err != nil || r.Capped != "" {
		return r, err
	}
	var secs float64
	if r.SnapshotRows, secs, err = p.snapshotFigures(ctx); err != nil {
		return r, err
	}
	r.SnapshotRowsPerS = float64(r.SnapshotRows) / secs
	r.FirstStartRSS = peak()
	fmt.Fprintf(out, "    %d rows at %.0f rows/s, streaming after %.1f s, peak %.0f MiB\n", r.SnapshotRows, r.SnapshotRowsPerS, r.FirstStartS, r.FirstStartRSS)

	fmt.Fprintf(out, "  streaming: %d writers as fast as they go for %s over %d x %d\n", c.writers, c.phase, b.products, b.warehouses)
	l, err := b.latencyPhase(ctx, 0, c.phase)
	if err != nil {
		return r, err
	}
	r.StreamChangesPS, r.StreamP99Ms, r.StreamRSS = l.Rate, l.P99, peak()
	fmt.Fprintf(out, "    %.0f changes/s, commit->kafka p99 %.1f ms, peak %.0f MiB\n", r.StreamChangesPS, r.StreamP99Ms, r.StreamRSS)

	fmt.Fprintln(out, "  restart")
	if err := p.stop(); err != nil {
		return r, err
	}
	if r.RestartS, err = start(); err != nil || r.Capped != "" {
		return r, err
	}
	r.RestartRSS = peak()
	fmt.Fprintf(out, "    streaming after %.2f s, peak %.0f MiB\n", r.RestartS, r.RestartRSS)

	if !b.stateless {
		fmt.Fprintln(out, "  restart with the state store removed")
		if err := p.stop(); err != nil {
			return r, err
		}
		if err := os.RemoveAll(b.stateDir()); err != nil {
			return r, err
		}
		if r.RebuildS, err = start(); err != nil || r.Capped != "" {
			return r, err
		}
		r.RebuildRSS = peak()
		fmt.Fprintf(out, "    streaming after %.2f s, peak %.0f MiB\n", r.RebuildS, r.RebuildRSS)
	}
	err = p.stop()
	p = nil
	return r, err
}

// watchRSS kills p once its peak RSS passes capMiB; the function it returns
// says, after the fact, whether that happened and how far the producer had
// come (the records of the run's changes topic, committed or not).
func (b *bench) watchRSS(ctx context.Context, p *producer, capMiB float64) func() string {
	if capMiB <= 0 {
		return func() string { return "" }
	}
	t0 := time.Now()
	hit := make(chan string, 1)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			<-t.C
			if done, _ := p.Exited(); done {
				return
			}
			if v, err := p.PeakRSSMiB(); err == nil && v > capMiB {
				_ = syscall.Kill(p.PID(), syscall.SIGKILL)
				hit <- fmt.Sprintf("killed at %.0f MiB after %.0f s, %d change records in Kafka", v, time.Since(t0).Seconds(), b.changeRecords(ctx))
				return
			}
		}
	}()
	return func() string {
		select {
		case msg := <-hit:
			return msg
		default:
			return ""
		}
	}
}

// changeRecords is the sum of the end offsets of the run's changes topic.
func (b *bench) changeRecords(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(b.c.brokers, ",")...))
	if err != nil {
		return -1
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, b.name+".stock.changes.v1")
	if err != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func printSizing(out io.Writer, bins []binary, all []sizingRun) {
	fmt.Fprintln(out)
	fmt.Fprintln(out, "producer sizing: median (min-max) over the runs")
	figures := []struct {
		name string
		get  func(sizingRun) float64
	}{
		{"snapshot rows/s", func(r sizingRun) float64 { return r.SnapshotRowsPerS }},
		{"first start to streaming, s", func(r sizingRun) float64 { return r.FirstStartS }},
		{"first start peak RSS, MiB", func(r sizingRun) float64 { return r.FirstStartRSS }},
		{"streaming changes/s (writers' max)", func(r sizingRun) float64 { return r.StreamChangesPS }},
		{"streaming commit->kafka p99, ms", func(r sizingRun) float64 { return r.StreamP99Ms }},
		{"streaming peak RSS, MiB", func(r sizingRun) float64 { return r.StreamRSS }},
		{"restart to streaming, s", func(r sizingRun) float64 { return r.RestartS }},
		{"restart peak RSS, MiB", func(r sizingRun) float64 { return r.RestartRSS }},
		{"store lost: rebuild to streaming, s", func(r sizingRun) float64 { return r.RebuildS }},
		{"store lost: peak RSS, MiB", func(r sizingRun) float64 { return r.RebuildRSS }},
	}
	fmt.Fprintf(out, "| %s |", "figure")
	for _, b := range bins {
		fmt.Fprintf(out, " %s |", b.label)
	}
	fmt.Fprintln(out)
	fmt.Fprint(out, "|---|")
	for range bins {
		fmt.Fprint(out, "---|")
	}
	fmt.Fprintln(out)
	for _, f := range figures {
		fmt.Fprintf(out, "| %s |", f.name)
		for _, b := range bins {
			var v []float64
			for _, r := range all {
				if r.Label == b.label && r.Capped == "" && f.get(r) > 0 {
					v = append(v, f.get(r))
				}
			}
			d := summary.Of(v)
			if d.N == 0 {
				fmt.Fprint(out, " - |")
				continue
			}
			fmt.Fprintf(out, " %s, n=%d |", d, d.N)
		}
		fmt.Fprintln(out)
	}
	for _, r := range all {
		if r.Capped != "" {
			fmt.Fprintf(out, "run %d, %s: %s\n", r.Run, r.Label, r.Capped)
		}
	}
}
