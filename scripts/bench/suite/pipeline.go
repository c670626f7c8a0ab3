package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/schemas"
	"github.com/stockpipe/stock/scripts/bench/latency"
	"github.com/stockpipe/stock/scripts/bench/proc"
	"github.com/stockpipe/stock/scripts/bench/report"
	"github.com/stockpipe/stock/scripts/bench/watch"
	"github.com/stockpipe/stock/scripts/warehouse/simulate"
)

const stopTimeout = 20 * time.Second

// Metric names read from the producer.
const (
	metricChangesRead  = "stock_producer_changes_read_total"
	metricSnapshotRows = "stock_producer_snapshot_rows_total"
)

// pipeline is one run of our pipeline's benchmark.
type pipeline struct {
	cfg Config
	log *slog.Logger
	in  *infra
	pg  *pgxpool.Pool
	n   names

	producer, projector, api *proc.Proc
	watch                    *watch.Watch
	smp                      *sampler
	rows                     int64
}

func (p *pipeline) topic(t string) string { return p.n.topicPrefix + t }

// startProducer starts the CDC producer on the run's slot and topics and
// waits for its initial snapshot to be in Kafka.
func startProducer(ctx context.Context, cfg Config, in *infra, n names, rows int64) (*proc.Proc, error) {
	args := append([]string{
		"--postgres-url", cfg.PGURL, "--slot", n.slot, "--publication", n.publication,
		"--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", n.topicPrefix,
		"--partitions", fmt.Sprint(cfg.Partitions), "--metrics-addr", cfg.ProducerMetrics,
	}, cfg.ProducerFlags...)
	pr, err := proc.Start("producer", cfg.LogDir, filepath.Join(cfg.BinDir, "producer"), args...)
	if err != nil {
		return nil, err
	}
	// The snapshot of every row, then the stream.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if done, err := pr.Exited(); done {
			return pr, fmt.Errorf("producer exited during its snapshot: %v (see %s/producer.log)", err, cfg.LogDir)
		}
		m, err := proc.Scrape(ctx, "http://"+cfg.ProducerMetrics+"/metrics", metricSnapshotRows)
		if err == nil && int64(m[metricSnapshotRows]) >= rows {
			break
		}
		if time.Now().After(deadline) {
			return pr, fmt.Errorf("producer snapshot not done after 3 minutes (%v)", m)
		}
		select {
		case <-ctx.Done():
			return pr, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return pr, in.waitTopic(ctx, n.topicPrefix+schemas.TopicChanges, 30*time.Second)
}

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

// RunPipeline benchmarks producer, projector and query API together.
func RunPipeline(ctx context.Context, env *Env, id string) (*report.Run, error) {
	cfg, in := env.cfg, env.in
	p := &pipeline{cfg: cfg, log: env.log, in: in, pg: in.pg, n: newNames(id, "")}
	run := &report.Run{Kind: "pipeline", RunID: id, StartedAt: time.Now().UTC(), Command: cfg.Command,
		LoadStart: report.LoadAvg(), Machine: report.ThisMachine(), Settings: settings(cfg)}
	defer p.cleanup()
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.watch.Run(runCtx); err != nil {
			p.log.Error("watch stopped", "error", err)
		}
	}()
	p.smp = newSampler(runCtx, mustStore(in, p.n.redisPrefix), cfg.APIAddr, cfg.PollInterval)

	for _, st := range cfg.Fixed {
		ph, err := p.phase(ctx, st)
		if err != nil {
			return run, err
		}
		run.Phases = append(run.Phases, ph)
	}
	for i, rate := range cfg.MaxRates {
		if rate <= 0 {
			continue // --max-rates=0 skips find-the-max
		}
		st := Step{Name: fmt.Sprintf("max-%d", i+1), Rate: rate, TxMaxCalls: cfg.MaxTxMaxCalls, Duration: cfg.MaxStep}
		ph, err := p.phase(ctx, st)
		if err != nil {
			return run, err
		}
		ph.Sustained = ph.API.Count > 0 && ph.API.P99 <= ms(cfg.MaxP99) && ph.DrainSeconds <= cfg.MaxDrain.Seconds() &&
			ph.Unmatched*20 <= ph.Samples
		run.Phases = append(run.Phases, ph)
		if ph.Sustained && (run.MaxStep == nil || ph.ChangesPerS > run.MaxStep.ChangesPerS) {
			best := ph
			run.MaxStep = &best
		}
		// Past saturation of the source or of the pipeline, higher rates
		// only repeat the last step.
		if !ph.Sustained || ph.CallsPerS < 0.7*rate {
			break
		}
	}
	if cfg.Backlog > 0 {
		c, err := p.catchup(ctx)
		if err != nil {
			return run, err
		}
		run.Catchup = c
	}
	if cfg.Rebuild {
		r, err := p.rebuild(ctx)
		if err != nil {
			return run, err
		}
		run.Rebuild = r
	}
	run.Seconds = time.Since(run.StartedAt).Seconds()
	return run, nil
}

func ms(d time.Duration) float64 { return d.Seconds() * 1e3 }

func mustStore(in *infra, prefix string) *stockstore.Store {
	st, err := stockstore.New(in.rdb, prefix)
	if err != nil {
		panic(err) // the prefix is made by newNames, always valid
	}
	return st
}

func (p *pipeline) start(ctx context.Context) error {
	rows, err := p.in.rowCount(ctx)
	if err != nil {
		return fmt.Errorf("counting source rows: %w", err)
	}
	if rows == 0 {
		return errors.New("inventory_levels is empty: seed first")
	}
	p.rows = rows
	p.log.Info("starting producer", "slot", p.n.slot, "topic_prefix", p.n.topicPrefix, "rows", rows)
	start := time.Now()
	p.producer, err = startProducer(ctx, p.cfg, p.in, p.n, rows)
	if err != nil {
		return err
	}
	p.log.Info("producer snapshot done", "seconds", time.Since(start).Seconds())
	p.projector, err = proc.Start("projector", p.cfg.LogDir, filepath.Join(p.cfg.BinDir, "projector"),
		"--brokers", strings.Join(p.cfg.Brokers, ","), "--topic", p.topic(schemas.TopicLevels),
		"--group", p.n.group, "--redis-addr", p.cfg.RedisAddr, "--redis-prefix", p.n.redisPrefix,
		"--metrics-addr", p.cfg.ProjectorMetrics)
	if err != nil {
		return err
	}
	apiBin := filepath.Join(p.cfg.BinDir, "query-api")
	apiArgs := []string{"--addr", p.cfg.APIAddr, "--redis-addr", p.cfg.RedisAddr, "--redis-prefix", p.n.redisPrefix}
	if hasFlag(ctx, apiBin, "--levels-topic") {
		// Its freshness and readiness follow the projector of this run.
		apiArgs = append(apiArgs, "--levels-topic", p.topic(schemas.TopicLevels))
	}
	p.api, err = proc.Start("query-api", p.cfg.LogDir, apiBin, apiArgs...)
	if err != nil {
		return err
	}
	if _, err := p.in.waitGroupCaughtUp(ctx, p.n.group, p.topic(schemas.TopicLevels), 3*time.Minute); err != nil {
		return fmt.Errorf("projecting the snapshot: %w", err)
	}
	p.log.Info("snapshot projected", "seconds", time.Since(start).Seconds())
	p.watch, err = watch.New(ctx, watch.Config{
		Brokers: p.cfg.Brokers, Topic: p.topic(schemas.TopicChanges), CommitTime: watch.HeaderTime,
		OnRecord: func(r *kgo.Record, at time.Time) { p.smp.onRecord(r, at) },
	})
	return err
}

// hasFlag reports whether a program's --help lists a flag: the programs
// under test grow flags while the benchmark stays usable with older builds.
func hasFlag(ctx context.Context, bin, flag string) bool {
	out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	return strings.Contains(string(out), flag+"=")
}

func (p *pipeline) procs() []*proc.Proc { return []*proc.Proc{p.producer, p.projector, p.api} }

// cpus reads the CPU time of the processes, and of the benchmark itself
// (simulator, pollers, watch) as "bench", to show what measuring costs.
func cpus(ps ...*proc.Proc) map[string]time.Duration {
	out := map[string]time.Duration{}
	if c, err := proc.CPUOf(os.Getpid()); err == nil {
		out["bench"] = c
	}
	for _, pr := range ps {
		if pr == nil {
			continue
		}
		if c, err := pr.CPU(); err == nil {
			out[pr.Name] = c
		}
	}
	return out
}

func cpuFigures(before, after map[string]time.Duration, changes int64) (secs, perM map[string]float64) {
	secs, perM = map[string]float64{}, map[string]float64{}
	for name, a := range after {
		d := (a - before[name]).Seconds()
		secs[name] = round2(d)
		if changes > 0 {
			perM[name] = round2(d / float64(changes) * 1e6)
		}
	}
	return secs, perM
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// simulator builds a simulator for one step.
func (p *pipeline) simulator(st Step, onWrite func(simulate.Write)) (*simulate.Simulator, error) {
	return simulate.New(simulate.Config{
		Rate: st.Rate, Duration: st.Duration, Products: p.cfg.Products, Warehouses: p.cfg.Warehouses,
		Workers: p.cfg.Workers, TxMaxCalls: st.TxMaxCalls, OnWrite: onWrite, ReportEvery: time.Hour,
	}, p.pg, p.log.With("phase", st.Name))
}

// simTotals sums the simulator's calls (expiry sweeps aside) and failures.
func simTotals(sim *simulate.Simulator) (calls, failed int64) {
	for kind, c := range sim.Totals() {
		if kind == inventorydb.KindExpire {
			continue
		}
		calls += c.OK + c.Refused + c.Failed
		failed += c.Failed
	}
	return calls, failed
}

// phase runs one load step with sampling and measures it.
func (p *pipeline) phase(ctx context.Context, st Step) (report.Phase, error) {
	p.log.Info("phase", "name", st.Name, "rate", st.Rate, "tx_max_calls", st.TxMaxCalls, "duration", st.Duration.String())
	ph := report.Phase{Name: st.Name, TargetRate: st.Rate, TxMaxCalls: max(st.TxMaxCalls, 1)}
	p.smp.begin(max(1, int(st.Rate/p.cfg.SamplesPerSecond)))
	sim, err := p.simulator(st, p.smp.onWrite)
	if err != nil {
		return ph, err
	}
	m0, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return ph, err
	}
	cpu0 := cpus(p.procs()...)
	from := time.Now()
	win := p.watch.Open(st.Name, from)
	if err := sim.Run(ctx); err != nil {
		return ph, fmt.Errorf("simulating %s: %w", st.Name, err)
	}
	to := time.Now()
	win.Close(to)
	ph.Seconds = round2(to.Sub(from).Seconds())

	// Drain: every change of the phase in Kafka, every sample resolved.
	deadline := to.Add(sampleTimeout + 5*time.Second)
	for time.Now().Before(deadline) {
		last, _ := p.watch.LastRead()
		if !p.smp.active() && time.Since(last) > time.Second && time.Since(to) > time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	samples := p.smp.stop()
	m1, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return ph, err
	}
	cpu1 := cpus(p.procs()...)

	ph.Calls, ph.Failed = simTotals(sim)
	ph.CallsPerS = round2(float64(ph.Calls) / ph.Seconds)
	ph.Behind = sim.Behind()
	ph.Changes = int64(m1[metricChangesRead] - m0[metricChangesRead])
	ph.Producer = producerInside(m0, m1, ph.Seconds)
	ph.ChangesPerS = round2(float64(ph.Changes) / ph.Seconds)
	ph.KafkaAll = win.Latency.Summary()
	ph.CPUSeconds, ph.CPUPerMillion = cpuFigures(cpu0, cpu1, ph.Changes)

	var kafka, redis, api latency.Recorder
	drainedAt := to
	if _, _, lastRead := win.Counts(); lastRead.After(drainedAt) {
		drainedAt = lastRead
	}
	for _, s := range samples {
		r := s.Result()
		if !r.KafkaOK {
			ph.Unmatched++
			continue
		}
		kafka.Add(r.Kafka)
		if r.RedisOK {
			redis.Add(r.Redis)
		}
		if r.APIOK {
			api.Add(r.API)
			if at := s.WrittenAt.Add(r.API); at.After(drainedAt) { // approximately the commit time
				drainedAt = at
			}
		}
	}
	ph.Samples = len(samples)
	ph.Kafka, ph.Redis, ph.API = kafka.Summary(), redis.Summary(), api.Summary()
	ph.DrainSeconds = round2(max(drainedAt.Sub(to).Seconds(), 0))
	p.log.Info("phase done", "name", st.Name, "calls_per_s", ph.CallsPerS, "changes_per_s", ph.ChangesPerS,
		"kafka_p99_ms", ph.KafkaAll.P99, "api_p99_ms", ph.API.P99, "samples", ph.Samples, "unmatched", ph.Unmatched,
		"dropped", p.smp.dropped.Load(), "drain_s", ph.DrainSeconds, "cpu_per_million", ph.CPUPerMillion)
	time.Sleep(2 * time.Second) // settle between phases
	return ph, nil
}

// catchup pauses the producer, builds a backlog in its slot, resumes it and
// times the drain to Kafka and on to Redis.
func (p *pipeline) catchup(ctx context.Context) (*report.Catchup, error) {
	st := Step{Name: "catchup", Rate: p.cfg.BacklogRate, TxMaxCalls: p.cfg.MaxTxMaxCalls, Duration: p.cfg.Backlog}
	p.log.Info("catch-up: pausing the producer and building a backlog", "rate", st.Rate, "duration", st.Duration.String())
	sim, err := p.simulator(st, nil)
	if err != nil {
		return nil, err
	}
	m0, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return nil, err
	}
	ch0 := int64(m0[metricChangesRead])
	if err := p.producer.Pause(); err != nil {
		return nil, fmt.Errorf("pausing producer: %w", err)
	}
	from := time.Now()
	win := p.watch.Open(st.Name, from)
	if err := sim.Run(ctx); err != nil {
		_ = p.producer.Resume()
		return nil, fmt.Errorf("building backlog: %w", err)
	}
	win.Close(time.Now())
	c := &report.Catchup{BacklogSeconds: round2(time.Since(from).Seconds())}

	trackCtx, stopTrack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	track := trackCPU(trackCtx, &wg, p.producer, p.projector)
	defer wg.Wait()
	defer stopTrack()
	resumed := time.Now()
	if err := p.producer.Resume(); err != nil {
		return nil, fmt.Errorf("resuming producer: %w", err)
	}
	// To Kafka: until the window's records stop coming.
	for {
		n, _, last := win.Counts()
		if n > 0 && time.Since(last) > 1500*time.Millisecond {
			break
		}
		if time.Since(resumed) > 3*time.Minute {
			return nil, errors.New("catch-up: the backlog did not drain within 3 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	n, _, kafkaDone := win.Counts()
	e2eDone, err := p.in.waitGroupCaughtUp(ctx, p.n.group, p.topic(schemas.TopicLevels), 3*time.Minute)
	if err != nil {
		return nil, err
	}
	m1, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return nil, err
	}
	c.Changes = int64(m1[metricChangesRead]) - ch0
	c.Producer = producerInside(m0, m1, kafkaDone.Sub(resumed).Seconds())
	if n != c.Changes {
		p.log.Warn("catch-up: change records read differ from changes the producer read", "records", n, "changes", c.Changes)
	}
	c.KafkaSeconds = round2(kafkaDone.Sub(resumed).Seconds())
	c.KafkaPerS = round2(float64(n) / kafkaDone.Sub(resumed).Seconds())
	c.E2ESeconds = round2(e2eDone.Sub(resumed).Seconds())
	c.E2EPerS = round2(float64(c.Changes) / e2eDone.Sub(resumed).Seconds())
	before := map[string]time.Duration{"producer": track.at("producer", resumed), "projector": track.at("projector", resumed)}
	after := map[string]time.Duration{"producer": track.at("producer", kafkaDone), "projector": track.at("projector", e2eDone)}
	c.CPUSeconds, c.CPUPerMillion = cpuFigures(before, after, c.Changes)
	p.log.Info("catch-up done", "changes", c.Changes, "to_kafka_per_s", c.KafkaPerS, "end_to_end_per_s", c.E2EPerS,
		"cpu_per_million", c.CPUPerMillion)
	time.Sleep(2 * time.Second)
	return c, nil
}

// rebuild times a rebuild of the cache from offset 0: `projector rebuild`
// (a replay into a new generation, then the switch) when the projector has
// that command, else a fresh projector in a new group and key prefix
// catching up to the end of the topic.
func (p *pipeline) rebuild(ctx context.Context) (*report.Rebuild, error) {
	bin := filepath.Join(p.cfg.BinDir, "projector")
	if exec.CommandContext(ctx, bin, "rebuild", "--help").Run() == nil {
		return p.rebuildCommand(ctx, bin)
	}
	return p.rebuildFresh(ctx, bin)
}

// rebuildCommand runs `projector rebuild` on the run's own cache, beside
// the live projector, as an operator would, and reads its own account of
// the replay from its log.
func (p *pipeline) rebuildCommand(ctx context.Context, bin string) (*report.Rebuild, error) {
	topic := p.topic(schemas.TopicLevels)
	_, records, err := p.in.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	p.log.Info("rebuild: projector rebuild from offset 0", "records", records)
	start := time.Now()
	pr, err := proc.Start("projector-rebuild", p.cfg.LogDir, bin, "rebuild",
		"--brokers", strings.Join(p.cfg.Brokers, ","), "--topic", topic, "--group", p.n.group,
		"--redis-addr", p.cfg.RedisAddr, "--redis-prefix", p.n.redisPrefix, "--metrics-addr", p.cfg.RebuildMetrics)
	if err != nil {
		return nil, err
	}
	if err := pr.Wait(ctx, 5*time.Minute); err != nil {
		_ = pr.Stop(stopTimeout)
		return nil, fmt.Errorf("projector rebuild: %w (see %s/projector-rebuild.log)", err, p.cfg.LogDir)
	}
	wall := time.Since(start)
	cpu, _ := pr.ExitCPU()
	r := &report.Rebuild{Method: "projector rebuild (replay into a new generation, switch readers; beside the live projector)",
		Records: records, Seconds: round2(wall.Seconds()), CPUSeconds: round2(cpu.Seconds())}
	if done, ok := findLogLine(filepath.Join(p.cfg.LogDir, "projector-rebuild.log"), "rebuild done"); ok {
		if n, ok := done["records"].(float64); ok {
			r.Records = int64(n)
		}
		if sw, ok := done["switched_after"].(string); ok {
			if d, err := time.ParseDuration(sw); err == nil {
				r.SwitchSeconds = round2(d.Seconds())
			}
		}
	}
	if r.SwitchSeconds > 0 {
		r.RecordsPerS = round2(float64(r.Records) / r.SwitchSeconds)
	}
	p.log.Info("rebuild done", "seconds", r.Seconds, "switched_after_s", r.SwitchSeconds, "records_per_s", r.RecordsPerS)
	return r, nil
}

// findLogLine returns the fields of the last JSON log line with msg.
func findLogLine(path, msg string) (map[string]any, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var found map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			found = m
		}
	}
	return found, found != nil
}

// rebuildFresh times a fresh projector (new group, new prefix) replaying
// the levels topic from offset 0 to its current end.
func (p *pipeline) rebuildFresh(ctx context.Context, bin string) (*report.Rebuild, error) {
	topic := p.topic(schemas.TopicLevels)
	ends, records, err := p.in.endOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	group := p.n.group + "_rebuild"
	prefix := strings.TrimSuffix(p.n.redisPrefix, ":") + "_rebuild:"
	defer func() {
		p.in.deleteGroups(context.WithoutCancel(ctx), group)
		_, _ = p.in.deleteRedisPrefix(context.WithoutCancel(ctx), prefix)
	}()
	p.log.Info("rebuild: fresh projector from offset 0", "records", records, "group", group)
	start := time.Now()
	pr, err := proc.Start("projector-rebuild", p.cfg.LogDir, bin,
		"--brokers", strings.Join(p.cfg.Brokers, ","), "--topic", topic, "--group", group,
		"--redis-addr", p.cfg.RedisAddr, "--redis-prefix", prefix, "--metrics-addr", p.cfg.RebuildMetrics)
	if err != nil {
		return nil, err
	}
	defer pr.Stop(stopTimeout) //nolint:errcheck // best effort at the end
	var done time.Time
	for {
		behind, err := p.in.groupBehind(ctx, group, topic, ends)
		if err == nil && behind == 0 {
			done = time.Now()
			break
		}
		if exited, perr := pr.Exited(); exited {
			return nil, fmt.Errorf("rebuild projector exited: %v", perr)
		}
		if time.Since(start) > 5*time.Minute {
			return nil, errors.New("rebuild did not finish within 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpu, _ := pr.CPU()
	r := &report.Rebuild{
		Method:  "fresh projector, new consumer group and key prefix, from offset 0 to the end offsets at start",
		Records: records, Seconds: round2(done.Sub(start).Seconds()), SwitchSeconds: round2(done.Sub(start).Seconds()),
		RecordsPerS: round2(float64(records) / done.Sub(start).Seconds()), CPUSeconds: round2(cpu.Seconds()),
	}
	p.log.Info("rebuild done", "seconds", r.Seconds, "records_per_s", r.RecordsPerS)
	return r, nil
}

// cleanup stops what the run started and removes what it created, on a
// context of its own: it runs after an interrupt too.
func (p *pipeline) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, pr := range []*proc.Proc{p.api, p.projector, p.producer} {
		if pr != nil {
			if err := pr.Stop(stopTimeout); err != nil {
				p.log.Warn("stopping", "name", pr.Name, "error", err)
			}
		}
	}
	errs := []error{
		p.in.dropSlot(ctx, p.n.slot),
		p.in.dropPublication(ctx, p.n.publication),
		p.in.deleteTopics(ctx, p.n.topicPrefix),
	}
	p.in.deleteGroups(ctx, p.n.group)
	_, err := p.in.deleteRedisPrefix(ctx, p.n.redisPrefix)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		p.log.Warn("cleaning up", "error", err)
	} else {
		p.log.Info("cleaned up", "slot", p.n.slot, "topic_prefix", p.n.topicPrefix, "redis_prefix", p.n.redisPrefix)
	}
}

// settings is the configuration recorded in the results.
func settings(cfg Config) map[string]any {
	steps := func(ss []Step) []string {
		out := make([]string, 0, len(ss))
		for _, s := range ss {
			out = append(out, fmt.Sprintf("%s: %.0f calls/s, tx<=%d, %s", s.Name, s.Rate, max(s.TxMaxCalls, 1), s.Duration))
		}
		return out
	}
	rates := append([]float64(nil), cfg.MaxRates...)
	sort.Float64s(rates)
	return map[string]any{
		"products": cfg.Products, "warehouses": cfg.Warehouses, "workers": cfg.Workers, "partitions": cfg.Partitions,
		"fixed": steps(cfg.Fixed), "max_rates": rates, "max_step": cfg.MaxStep.String(), "max_tx_max_calls": cfg.MaxTxMaxCalls,
		"max_p99": cfg.MaxP99.String(), "max_drain": cfg.MaxDrain.String(),
		"backlog": cfg.Backlog.String(), "backlog_rate": cfg.BacklogRate, "rebuild": cfg.Rebuild,
		"samples_per_s": cfg.SamplesPerSecond, "poll_interval": cfg.PollInterval.String(),
		"peer": steps(cfg.PeerSteps), "producer_flags": cfg.ProducerFlags,
	}
}
