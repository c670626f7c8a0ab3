package suite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
	"github.com/stockpipe/stock/scripts/bench/redisprefix"
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
		// The state store beside the run's logs, not in the working
		// directory's default folder.
		"--state-dir", filepath.Join(cfg.LogDir, "producer-state"),
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
	_, err := redisprefix.Delete(ctx, p.in.rdb, p.n.redisPrefix)
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
