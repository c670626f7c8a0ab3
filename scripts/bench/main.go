// Command bench is every benchmark of the stock pipeline on the real local
// stack, one subcommand each: `bench pipeline` drives producer, projector
// and query API with the warehouse simulator through fixed-rate,
// find-the-max, catch-up and rebuild phases; `bench debezium` runs our
// producer and Debezium's PostgreSQL connector side by side on the same
// workload; `bench producer`, `bench projector` and `bench api` measure one
// program each; `bench summarize` gives the distribution over several runs.
// They share one way of running and reading processes (proc) and of
// reporting (report). main only wires: the scenarios live in
// scripts/bench/suite and in one package per single-program benchmark.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/stockpipe/stock/scripts/bench/apibench"
	"github.com/stockpipe/stock/scripts/bench/producerbench"
	"github.com/stockpipe/stock/scripts/bench/projectorbench"
	"github.com/stockpipe/stock/scripts/bench/report"
	"github.com/stockpipe/stock/scripts/bench/suite"
	"github.com/stockpipe/stock/scripts/bench/summary"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type common struct {
	PGURL     string   `name:"pg-url" env:"STOCK_PG_URL" default:"postgres://stock:stock@127.0.0.1:5432/stock?sslmode=disable" help:"Source PostgreSQL (seeded)."`
	Brokers   []string `name:"brokers" env:"STOCK_KAFKA_BROKERS" default:"127.0.0.1:9092" sep:"," help:"Kafka seed brokers."`
	RedisAddr string   `name:"redis-addr" env:"STOCK_REDIS_ADDR" default:"127.0.0.1:6379" help:"Redis address."`
	BinDir    string   `name:"bin-dir" default:".local/bin" help:"Folder of the built producer, projector and query-api."`
	OutDir    string   `name:"out-dir" default:"bench-results" help:"Folder of the JSON results."`
	LogDir    string   `name:"log-dir" default:".local/bench" help:"Folder of the per-run process logs (a subfolder per run)."`

	Products   int `default:"10000" help:"Products the simulator draws from (seeded)."`
	Warehouses int `default:"20" help:"Warehouses the simulator draws from (seeded)."`
	Workers    int `default:"16" help:"Simulator connections."`
	Partitions int `default:"6" help:"Partitions of the run's topics."`

	ProducerMetrics string   `name:"producer-metrics" default:"127.0.0.1:19101" help:"Metrics address of the producer started."`
	ProducerFlags   []string `name:"producer-flags" sep:"none" help:"Extra producer flag (repeatable), e.g. --producer-flags=--batch-linger=50ms."`

	SamplesPerSecond float64       `name:"samples-per-second" default:"25" help:"Writes followed end to end per second."`
	PollInterval     time.Duration `name:"poll-interval" default:"1ms" help:"Poll period of a young sample (Redis and API)."`
	LogLevel         string        `name:"log-level" default:"info" enum:"debug,info,warn,error" help:"Log level."`
	CPUProfile       string        `name:"cpu-profile" help:"Write the bench's own CPU profile (simulator, samplers, consumers) over the whole run to this file."`
}

type pipelineCmd struct {
	common
	ProjectorMetrics string        `name:"projector-metrics" default:"127.0.0.1:19102" help:"Metrics address of the projector started."`
	RebuildMetrics   string        `name:"rebuild-metrics" default:"127.0.0.1:19103" help:"Metrics address of the rebuild projector."`
	APIAddr          string        `name:"api-addr" default:"127.0.0.1:18080" help:"Listen address of the query API started."`
	Fixed            []string      `name:"fixed" default:"fixed-1k=1000/1/30s,fixed-10k=10000/1/30s" help:"Fixed-rate phases: name=calls_per_s/tx_max_calls/duration."`
	MaxRates         []float64     `name:"max-rates" default:"2000,3000,4500,6000,10000" help:"Find-the-max: calls/s tried in order (stops once the source falls short by 30% or a step is not sustained); 0 skips it."`
	MaxStep          time.Duration `name:"max-step" default:"20s" help:"Duration of each find-the-max step."`
	MaxTxMaxCalls    int           `name:"max-tx-max-calls" default:"4" help:"Calls per source transaction (1..N) in find-the-max and catch-up."`
	MaxP99           time.Duration `name:"max-p99" default:"500ms" help:"A step is sustained at most this p99 commit-to-API..."`
	MaxDrain         time.Duration `name:"max-drain" default:"5s" help:"...and draining within this once the load stops."`
	Backlog          time.Duration `name:"backlog" default:"20s" help:"Catch-up: backlog built while the producer is paused (0 skips)."`
	BacklogRate      float64       `name:"backlog-rate" default:"40000" help:"Catch-up: simulator rate while building the backlog."`
	Rebuild          bool          `name:"rebuild" default:"true" negatable:"" help:"Time a projector rebuild from offset 0."`
}

type debeziumCmd struct {
	common
	Java         string        `default:"java" help:"Java 17+ binary."`
	DebeziumLibs string        `name:"debezium-libs" default:".local/debezium/libs" help:"Jars of Kafka Connect and the Debezium connector (scripts/debezium/pom.xml)."`
	DebeziumConf string        `name:"debezium-conf" default:"scripts/debezium" help:"Folder of worker.properties, connector.properties, log4j2.properties."`
	DebeziumREST string        `name:"debezium-rest" default:"127.0.0.1:18083" help:"Connect REST listener."`
	Steps        []string      `name:"steps" default:"live-1k=1000/1/30s,live-max=40000/4/30s" help:"Side-by-side live phases: name=calls_per_s/tx_max_calls/duration."`
	Backlog      time.Duration `name:"backlog" default:"20s" help:"Drain: backlog built while both are paused (0 skips)."`
	BacklogRate  float64       `name:"backlog-rate" default:"40000" help:"Drain: simulator rate while building the backlog."`
	TxMaxCalls   int           `name:"tx-max-calls" default:"4" help:"Calls per source transaction while building the backlog."`
	Heap         string        `name:"heap" default:"-Xms256m -Xmx1g" help:"JVM heap flags of the Connect worker."`
}

type summarizeCmd struct {
	Files []string `arg:"" type:"existingfile" help:"Result files of several runs (bench-results/*.json)."`
}

// ownFlags is a benchmark that parses its own flags with Go's flag package
// (-flag or --flag), as it did when it was a program of its own, so that
// its documented command lines and BENCH_ARGS keep their meaning.
type ownFlags struct {
	Args []string `arg:"" optional:"" help:"Its flags (--help lists them)."`
}

type cli struct {
	Pipeline  pipelineCmd  `cmd:"" help:"Benchmark producer, projector and query API end to end."`
	Debezium  debeziumCmd  `cmd:"" help:"Benchmark our producer against Debezium's PostgreSQL connector."`
	Producer  ownFlags     `cmd:"" passthrough:"" help:"Benchmark the producer alone: snapshot, streaming, one large transaction, commit-to-Kafka latency."`
	Sizing    ownFlags     `cmd:"" passthrough:"" help:"Benchmark what the catalog's size does to the producer: first start, streaming at the writers' maximum, restart, state rebuild; one or more binaries side by side."`
	Projector ownFlags     `cmd:"" passthrough:"" help:"Benchmark the projector's Redis writes (apply) and a rebuild."`
	API       ownFlags     `cmd:"" name:"api" passthrough:"" help:"Benchmark the query API beside the same reads straight from Redis."`
	Summarize summarizeCmd `cmd:"" help:"Median, minimum and maximum over several runs' result files, as markdown tables."`
}

func parseSteps(specs []string) ([]suite.Step, error) {
	var out []suite.Step
	var errs []error
	for _, spec := range specs {
		name, rest, ok := strings.Cut(spec, "=")
		parts := strings.Split(rest, "/")
		if !ok || len(parts) != 3 {
			errs = append(errs, fmt.Errorf("step %q: want name=calls_per_s/tx_max_calls/duration", spec))
			continue
		}
		var st suite.Step
		st.Name = name
		_, err1 := fmt.Sscanf(parts[0], "%g", &st.Rate)
		_, err2 := fmt.Sscanf(parts[1], "%d", &st.TxMaxCalls)
		d, err3 := time.ParseDuration(parts[2])
		st.Duration = d
		if err := errors.Join(err1, err2, err3); err != nil {
			errs = append(errs, fmt.Errorf("step %q: %w", spec, err))
			continue
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

func (c common) config(id string) suite.Config {
	return suite.Config{
		PGURL: c.PGURL, Brokers: c.Brokers, RedisAddr: c.RedisAddr,
		BinDir: c.BinDir, OutDir: c.OutDir, LogDir: filepath.Join(c.LogDir, id),
		Command:  strings.Join(append([]string{"bench"}, os.Args[1:]...), " "),
		Products: c.Products, Warehouses: c.Warehouses, Workers: c.Workers, Partitions: c.Partitions,
		ProducerMetrics: c.ProducerMetrics, ProducerFlags: c.ProducerFlags, SamplesPerSecond: c.SamplesPerSecond, PollInterval: c.PollInterval,
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c cli
	exit := -1
	parser, err := kong.New(&c, kong.Name("bench"),
		kong.Description("Benchmarks of the stock pipeline on the local stack."),
		kong.Writers(stdout, stderr), kong.Exit(func(code int) { exit = code }))
	if err != nil {
		return err
	}
	kctx, err := parser.Parse(args)
	if exit == 0 {
		return nil
	}
	if err != nil {
		return err
	}

	switch strings.Fields(kctx.Command())[0] {
	case "summarize":
		return summarize(c.Summarize.Files, stdout)
	case "producer":
		return producerbench.Run(ctx, c.Producer.Args, stdout, stderr)
	case "sizing":
		return producerbench.RunSizing(ctx, c.Sizing.Args, stdout, stderr)
	case "projector":
		return projectorbench.Run(ctx, c.Projector.Args, stdout, stderr)
	case "api":
		return apibench.Run(ctx, c.API.Args, stdout, stderr)
	}

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := time.Now().UTC().Format("0102t1504") + hex.EncodeToString(b[:2])

	var cfg suite.Config
	var level, profile string
	switch kctx.Command() {
	case "pipeline":
		p := c.Pipeline
		level, profile = p.LogLevel, p.CPUProfile
		cfg = p.config(id)
		cfg.ProjectorMetrics, cfg.RebuildMetrics, cfg.APIAddr = p.ProjectorMetrics, p.RebuildMetrics, p.APIAddr
		if cfg.Fixed, err = parseSteps(p.Fixed); err != nil {
			return err
		}
		cfg.MaxRates, cfg.MaxStep, cfg.MaxTxMaxCalls = p.MaxRates, p.MaxStep, p.MaxTxMaxCalls
		cfg.MaxP99, cfg.MaxDrain = p.MaxP99, p.MaxDrain
		cfg.Backlog, cfg.BacklogRate, cfg.Rebuild = p.Backlog, p.BacklogRate, p.Rebuild
	case "debezium":
		d := c.Debezium
		level, profile = d.LogLevel, d.CPUProfile
		cfg = d.config(id)
		cfg.Java, cfg.DebeziumLibs, cfg.DebeziumConf, cfg.DebeziumREST = d.Java, d.DebeziumLibs, d.DebeziumConf, d.DebeziumREST
		if cfg.PeerSteps, err = parseSteps(d.Steps); err != nil {
			return err
		}
		cfg.Backlog, cfg.BacklogRate, cfg.MaxTxMaxCalls = d.Backlog, d.BacklogRate, d.TxMaxCalls
		cfg.PeerHeapFlags = strings.Fields(d.Heap)
	default:
		return fmt.Errorf("unknown command %q", kctx.Command())
	}

	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // enum-checked by kong
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lv}))
	log.Info("bench starting", "run_id", id, "command", kctx.Command(), "log_dir", cfg.LogDir)

	if profile != "" {
		stop, err := profileCPU(profile)
		if err != nil {
			return err
		}
		defer stop()
	}
	env, err := suite.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer env.Close()
	var res *report.Run
	if kctx.Command() == "pipeline" {
		res, err = suite.RunPipeline(ctx, env, id)
	} else {
		res, err = suite.RunPeer(ctx, env, id)
	}
	if res == nil {
		return err
	}
	res.LoadEnd = report.LoadAvg()
	if err != nil {
		res.Notes = append(res.Notes, "run ended early: "+err.Error())
	}
	path, werr := res.Write(cfg.OutDir)
	res.Table(stdout)
	if werr == nil {
		fmt.Fprintln(stdout, "\nresults:", path)
	}
	return errors.Join(err, werr)
}

// profileCPU starts the bench's own CPU profile: what its load costs the
// machine it shares with the programs under test.
func profileCPU(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// summarize prints the distributions over several runs' result files.
func summarize(files []string, stdout io.Writer) error {
	runs, err := summary.Load(files)
	if err != nil {
		return err
	}
	var pipe, peer []*report.Run
	for _, r := range runs {
		if r.Kind == "debezium" {
			peer = append(peer, r)
		} else {
			pipe = append(pipe, r)
		}
	}
	if len(pipe) > 0 {
		summary.Pipeline(stdout, pipe)
	}
	if len(peer) > 0 {
		summary.Peer(stdout, peer)
	}
	return nil
}
