package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stockpipe/stock/schemas"
	"github.com/stockpipe/stock/scripts/bench/proc"
	"github.com/stockpipe/stock/scripts/bench/report"
	"github.com/stockpipe/stock/scripts/bench/watch"
)

// peer is one side-by-side run of our producer and Debezium's PostgreSQL
// connector on Kafka Connect standalone: same PostgreSQL, same Kafka, same
// simulator workload, each with its own slot, publication and topics.
type peer struct {
	cfg  Config
	env  *Env
	in   *infra
	ours names
	dbz  names

	producer, connect *proc.Proc
	oursWatch         *watch.Watch
	dbzWatch          *watch.Watch
}

func (p *peer) dbzTopicPrefix() string { return strings.TrimSuffix(p.dbz.topicPrefix, ".") }
func (p *peer) dbzTopic() string       { return p.dbzTopicPrefix() + ".public.inventory_levels" }
func (p *peer) connectorName() string  { return "bench-debezium-" + p.dbz.id }

// RunPeer benchmarks our producer against Debezium side by side.
func RunPeer(ctx context.Context, env *Env, id string) (*report.Run, error) {
	p := &peer{cfg: env.cfg, env: env, in: env.in, ours: newNames(id, ""), dbz: newNames(id, "_dbz")}
	run := &report.Run{Kind: "debezium", RunID: id, StartedAt: time.Now().UTC(), Command: p.cfg.Command,
		LoadStart: report.LoadAvg(), Machine: report.ThisMachine(), Settings: settings(p.cfg)}
	defer p.cleanup()
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, w := range []*watch.Watch{p.oursWatch, p.dbzWatch} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(runCtx); err != nil {
				p.env.log.Error("watch stopped", "error", err)
			}
		}()
	}

	// Warm-up, not measured: the JVM compiles its hot paths in the first
	// seconds of load, and ours fills its connection pools.
	if _, err := p.phase(ctx, Step{Name: "warm-up", Rate: 1000, TxMaxCalls: 1, Duration: 10 * time.Second}); err != nil {
		return run, err
	}
	for _, st := range p.cfg.PeerSteps {
		ph, err := p.phase(ctx, st)
		if err != nil {
			return run, err
		}
		run.Peer = append(run.Peer, ph)
	}
	if p.cfg.Backlog > 0 {
		ph, err := p.drain(ctx)
		if err != nil {
			return run, err
		}
		run.Peer = append(run.Peer, ph)
	}
	run.Notes = append(run.Notes,
		"ours writes stock.levels.v1 (full product snapshot) and stock.alerts.v1 besides the row change records counted here; Debezium writes the row changes only",
		"Debezium: JSON without schemas, poll.interval.ms=5, producer linger 5 ms (scripts/debezium/*.properties); ours: Avro, one Kafka transaction per batch (exactly once)")
	run.Seconds = time.Since(run.StartedAt).Seconds()
	return run, nil
}

func (p *peer) start(ctx context.Context) error {
	rows, err := p.in.rowCount(ctx)
	if err != nil {
		return fmt.Errorf("counting source rows: %w", err)
	}
	if rows == 0 {
		return errors.New("inventory_levels is empty: seed first")
	}
	if err := p.in.createPublication(ctx, p.dbz.publication); err != nil {
		return err
	}
	if err := p.in.createTopic(ctx, p.dbzTopic(), int32(p.cfg.Partitions)); err != nil {
		return err
	}
	worker, connector, err := p.writeProperties()
	if err != nil {
		return err
	}
	args := append(append([]string{}, p.cfg.PeerHeapFlags...),
		"-Dlog4j2.configurationFile="+filepath.Join(p.cfg.DebeziumConf, "log4j2.properties"),
		"-cp", filepath.Join(p.cfg.DebeziumLibs, "*"),
		"org.apache.kafka.connect.cli.ConnectStandalone", worker, connector)
	p.env.log.Info("starting kafka connect with debezium", "slot", p.dbz.slot, "topic", p.dbzTopic())
	start := time.Now()
	if p.connect, err = proc.Start("connect", p.cfg.LogDir, p.cfg.Java, args...); err != nil {
		return err
	}
	p.env.log.Info("starting producer", "slot", p.ours.slot, "topic_prefix", p.ours.topicPrefix)
	if p.producer, err = startProducer(ctx, p.cfg, p.in, p.ours, rows); err != nil {
		return err
	}
	if err := p.waitConnector(ctx, 4*time.Minute); err != nil {
		return err
	}
	p.env.log.Info("both streaming", "seconds", time.Since(start).Seconds())
	if p.oursWatch, err = watch.New(ctx, watch.Config{Brokers: p.cfg.Brokers,
		Topic: p.ours.topicPrefix + schemas.TopicChanges, CommitTime: watch.HeaderTime}); err != nil {
		return err
	}
	p.dbzWatch, err = watch.New(ctx, watch.Config{Brokers: p.cfg.Brokers, Topic: p.dbzTopic(), CommitTime: watch.DebeziumTime})
	return err
}

// writeProperties copies the committed worker and connector properties
// into the run's folder with the run's own names appended (in a
// properties file the last value of a key wins).
func (p *peer) writeProperties() (worker, connector string, err error) {
	u, err := url.Parse(p.cfg.PGURL)
	if err != nil {
		return "", "", fmt.Errorf("parsing pg url: %w", err)
	}
	pw, _ := u.User.Password()
	if err := os.MkdirAll(p.cfg.LogDir, 0o755); err != nil {
		return "", "", err
	}
	overrides := map[string][]string{
		"worker.properties": {
			"bootstrap.servers=" + strings.Join(p.cfg.Brokers, ","),
			"offset.storage.file.filename=" + filepath.Join(p.cfg.LogDir, "connect.offsets"),
			"listeners=http://" + p.cfg.DebeziumREST,
		},
		"connector.properties": {
			"name=" + p.connectorName(),
			"database.hostname=" + u.Hostname(), "database.port=" + cmpOr(u.Port(), "5432"),
			"database.user=" + u.User.Username(), "database.password=" + pw,
			"database.dbname=" + strings.TrimPrefix(u.Path, "/"),
			"slot.name=" + p.dbz.slot, "publication.name=" + p.dbz.publication,
			"topic.prefix=" + p.dbzTopicPrefix(),
			"topic.creation.default.partitions=" + fmt.Sprint(p.cfg.Partitions),
		},
	}
	var paths []string
	for _, name := range []string{"worker.properties", "connector.properties"} {
		base, err := os.ReadFile(filepath.Join(p.cfg.DebeziumConf, name))
		if err != nil {
			return "", "", fmt.Errorf("reading %s: %w", name, err)
		}
		text := string(base) + "\n# This run's own values (bench).\n" + strings.Join(overrides[name], "\n") + "\n"
		path := filepath.Join(p.cfg.LogDir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return "", "", fmt.Errorf("writing %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths[0], paths[1], nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// waitConnector waits until Connect reports the connector's task running
// and its slot is streaming.
func (p *peer) waitConnector(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	statusURL := "http://" + p.cfg.DebeziumREST + "/connectors/" + p.connectorName() + "/status"
	for {
		if done, err := p.connect.Exited(); done {
			return fmt.Errorf("kafka connect exited: %v (see %s/connect.log)", err, p.cfg.LogDir)
		}
		var st struct {
			Tasks []struct {
				State string `json:"state"`
				Trace string `json:"trace"`
			} `json:"tasks"`
		}
		if resp, err := http.Get(statusURL); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if len(st.Tasks) > 0 && st.Tasks[0].State == "FAILED" {
			return fmt.Errorf("debezium task failed: %.500s", st.Tasks[0].Trace)
		}
		var active bool
		_ = p.in.pg.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, p.dbz.slot).Scan(&active)
		if len(st.Tasks) > 0 && st.Tasks[0].State == "RUNNING" && active {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("debezium not streaming after %s (see %s/connect.log)", timeout, p.cfg.LogDir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitQuiet waits until a window got records and none for quiet.
func waitQuiet(ctx context.Context, win *watch.Window, quiet, timeout time.Duration) error {
	start := time.Now()
	for {
		n, _, last := win.Counts()
		if n > 0 && time.Since(last) > quiet {
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("window %s: %d records, not quiet after %s", win.Name, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func side(win *watch.Window, cpu time.Duration) report.Side {
	n, _, _ := win.Counts()
	s := report.Side{Records: n, Latency: win.Latency.Summary(), CPUSeconds: round2(cpu.Seconds())}
	if n > 0 {
		s.CPUPerMillion = round2(cpu.Seconds() / float64(n) * 1e6)
	}
	return s
}

// phase runs one live step with both CDCs streaming the same writes.
func (p *peer) phase(ctx context.Context, st Step) (report.PeerPhase, error) {
	p.env.log.Info("phase", "name", st.Name, "rate", st.Rate, "tx_max_calls", st.TxMaxCalls, "duration", st.Duration.String())
	ph := report.PeerPhase{Name: st.Name, TargetRate: st.Rate, TxMaxCalls: max(st.TxMaxCalls, 1)}
	pl := &pipeline{cfg: p.cfg, log: p.env.log, pg: p.in.pg}
	sim, err := pl.simulator(st, nil)
	if err != nil {
		return ph, err
	}
	m0, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return ph, err
	}
	cpu0 := cpus(p.producer, p.connect)
	from := time.Now()
	wo, wd := p.oursWatch.Open(st.Name, from), p.dbzWatch.Open(st.Name, from)
	if err := sim.Run(ctx); err != nil {
		return ph, err
	}
	to := time.Now()
	wo.Close(to)
	wd.Close(to)
	ph.Seconds = round2(to.Sub(from).Seconds())
	errO := waitQuiet(ctx, wo, 2*time.Second, time.Minute)
	errD := waitQuiet(ctx, wd, 2*time.Second, 2*time.Minute)
	cpu1 := cpus(p.producer, p.connect)
	ph.Ours = side(wo, cpu1["producer"]-cpu0["producer"])
	ph.Debezium = side(wd, cpu1["connect"]-cpu0["connect"])
	if m1, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...); err == nil {
		ph.Ours.Producer = producerInside(m0, m1, ph.Seconds)
	}
	ph.Ours.PerS = round2(float64(ph.Ours.Records) / ph.Seconds)
	ph.Debezium.PerS = round2(float64(ph.Debezium.Records) / ph.Seconds)
	p.env.log.Info("phase done", "name", st.Name, "ours", ph.Ours, "debezium", ph.Debezium)
	return ph, errors.Join(errO, errD)
}

// drain builds one backlog in both slots while both are paused, then lets
// each read it alone: ours first, then Debezium, so neither competes with
// the other for the two cores.
func (p *peer) drain(ctx context.Context) (report.PeerPhase, error) {
	st := Step{Name: "drain", Rate: p.cfg.BacklogRate, TxMaxCalls: p.cfg.MaxTxMaxCalls, Duration: p.cfg.Backlog}
	ph := report.PeerPhase{Name: "backlog-drain", TargetRate: st.Rate, TxMaxCalls: max(st.TxMaxCalls, 1)}
	p.env.log.Info("drain: pausing both and building a backlog", "rate", st.Rate, "duration", st.Duration.String())
	pl := &pipeline{cfg: p.cfg, log: p.env.log, pg: p.in.pg}
	sim, err := pl.simulator(st, nil)
	if err != nil {
		return ph, err
	}
	time.Sleep(time.Second) // both idle: no Kafka transaction open while paused
	m0, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...)
	if err != nil {
		return ph, err
	}
	if err := errors.Join(p.producer.Pause(), p.connect.Pause()); err != nil {
		return ph, fmt.Errorf("pausing: %w", err)
	}
	from := time.Now()
	wo, wd := p.oursWatch.Open(ph.Name, from), p.dbzWatch.Open(ph.Name, from)
	if err := sim.Run(ctx); err != nil {
		_ = errors.Join(p.producer.Resume(), p.connect.Resume())
		return ph, err
	}
	wo.Close(time.Now())
	wd.Close(time.Now())
	ph.Seconds = round2(time.Since(from).Seconds())

	trackCtx, stopTrack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	track := trackCPU(trackCtx, &wg, p.producer, p.connect)
	defer wg.Wait()
	defer stopTrack()

	readAll := func(pr *proc.Proc, win *watch.Window, quiet time.Duration) (report.Side, error) {
		resumed := time.Now()
		if err := pr.Resume(); err != nil {
			return report.Side{}, err
		}
		err := waitQuiet(ctx, win, quiet, 3*time.Minute)
		_, _, last := win.Counts()
		s := side(win, track.at(pr.Name, last)-track.at(pr.Name, resumed))
		s.Seconds = round2(last.Sub(resumed).Seconds())
		if s.Seconds > 0 {
			s.PerS = round2(float64(s.Records) / s.Seconds)
		}
		return s, err
	}
	ph.Ours, err = readAll(p.producer, wo, 1500*time.Millisecond)
	if err != nil {
		_ = p.connect.Resume()
		return ph, err
	}
	if m1, err := proc.Scrape(ctx, "http://"+p.cfg.ProducerMetrics+"/metrics", producerCounters...); err == nil {
		ph.Ours.Producer = producerInside(m0, m1, ph.Ours.Seconds)
	}
	p.env.log.Info("drain: ours done", "side", ph.Ours)
	// Debezium's task may stall briefly on its own (offset flushes); a
	// longer quiet time before calling it done.
	ph.Debezium, err = readAll(p.connect, wd, 3*time.Second)
	p.env.log.Info("drain: debezium done", "side", ph.Debezium)
	return ph, err
}

func (p *peer) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, pr := range []*proc.Proc{p.connect, p.producer} {
		if pr != nil {
			if err := pr.Stop(stopTimeout); err != nil {
				p.env.log.Warn("stopping", "name", pr.Name, "error", err)
			}
		}
	}
	err := errors.Join(
		p.in.dropSlot(ctx, p.ours.slot), p.in.dropPublication(ctx, p.ours.publication),
		p.in.dropSlot(ctx, p.dbz.slot), p.in.dropPublication(ctx, p.dbz.publication),
		p.in.deleteTopics(ctx, p.ours.topicPrefix), p.in.deleteTopics(ctx, p.dbzTopicPrefix()+"."),
	)
	if err != nil {
		p.env.log.Warn("cleaning up", "error", err)
	} else {
		p.env.log.Info("cleaned up", "slots", []string{p.ours.slot, p.dbz.slot})
	}
}
