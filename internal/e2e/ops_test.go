package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/stockpipe/stock/internal/testenv"
)

// The operations kit: scripts/prometheus/rules.yml, its unit tests, the
// dashboard and docs/runbook.md.
const (
	rulesFile     = "../../scripts/prometheus/rules.yml"
	rulesTestFile = "../../scripts/prometheus/rules_test.yml"
	promTemplate  = "../../scripts/prometheus/prometheus.yml.tmpl"
	dashboardFile = "../../scripts/grafana/stock-pipeline.json"
	runbookFile   = "../../docs/runbook.md"
)

type rule struct {
	Record, Alert, Expr string
	Annotations         map[string]string
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct{ Rules []rule }
	}
	readYAML(t, rulesFile, &f)
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
}

// dashboardQueries returns every PromQL query of the dashboard, by panel.
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("parsing %s: %v", dashboardFile, err)
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// Every alert has a firing unit test, a runbook section and a runbook link
// that finds it: an alert nobody can act on, or whose expression no test
// ever made true, is not done. Needs no services.
func TestEveryAlertHasATestAndARunbookSection(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	readYAML(t, rulesTestFile, &tests)
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	runbook, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(runbook), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			headings[strings.TrimSpace(h)] = true
		}
	}
	n := 0
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		n++
		if !fired[r.Alert] {
			t.Errorf("alert %s: no test in rules_test.yml expects it to fire", r.Alert)
		}
		if !headings[r.Alert] {
			t.Errorf("alert %s: no section \"### %s\" in docs/runbook.md", r.Alert, r.Alert)
		}
		if want := "docs/runbook.md#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
	}
	if n == 0 {
		t.Fatal("no alerts in rules.yml")
	}
}

// troubleOnly are metrics a healthy run cannot show: vectors with no series
// until their first event (a slot repaired, a record refused), and the
// rebuild's, which a projector registers at its first rebuild.
var troubleOnly = []string{
	"stock_producer_slot_repairs_total",
	"stock_producer_foreign_records_total",
	"stock_projector_bad_records_total",
	"stock_projector_rebuild_target_records",
	"stock_projector_rebuild_records_per_second",
}

// The dashboard and the rules against the real metrics: the three programs,
// the reservation expiry sweeper (warehouse sweep), a Redis exporter and a
// PostgreSQL exporter (on the test's database) scraped by a real Prometheus
// loading rules.yml, under
// a few hundred stock changes and API reads. Every dashboard query must
// answer with series, every recording rule too, every alert expression
// must evaluate, and every metric a rule or panel names must exist, so that
// renaming a metric breaks this test instead of an operator's night.
func TestDashboardAndRulesOnRealMetrics(t *testing.T) {
	prom := tool(t, "prometheus")
	exporter := tool(t, "prometheus-redis-exporter")
	pgExporter := tool(t, "prometheus-postgres-exporter")

	conn := db(t, 200, 5)
	name := testenv.Name(t, "ops")
	prefix := name + "."
	brokers := strings.Join(testenv.KafkaBrokers(), ",")
	api, projMetrics, prodMetrics, sweepMetrics, expAddr, pgExpAddr, promAddr := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	start(t, "projector", "--brokers", brokers, "--topic", prefix+"stock.levels.v1", "--group", name,
		"--redis-addr", testenv.RedisAddr(), "--redis-prefix", name+":", "--metrics-addr", projMetrics)
	start(t, "query-api", "--addr", api, "--redis-addr", testenv.RedisAddr(), "--redis-prefix", name+":",
		"--levels-topic", prefix+"stock.levels.v1")
	start(t, "producer", "--postgres-url", conn.Config().ConnString(), "--slot", name, "--publication", name,
		"--brokers", brokers, "--topic-prefix", prefix, "--partitions", "3", "--metrics-addr", prodMetrics, "--state-dir", t.TempDir())
	t.Cleanup(func() { cleanupTopics(t, prefix) })
	// The sweeper is a subcommand of the warehouse tool, not a program of
	// its own: built like the programs, run like a tool.
	startTool(t, binary(t, "scripts/warehouse"), "sweep", "--pg-url", conn.Config().ConnString(),
		"--metrics-addr", sweepMetrics)
	startTool(t, exporter, "-redis.addr", "redis://"+testenv.RedisAddr(), "-web.listen-address", expAddr)
	// Version 0.11 takes its connection from DATA_SOURCE_NAME only.
	startToolEnv(t, []string{"DATA_SOURCE_NAME=" + conn.Config().ConnString()}, pgExporter,
		"--web.listen-address="+pgExpAddr)

	// The local stack's configuration, scraping and evaluating every second
	// so that rates and rules have samples within seconds.
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(promTemplate)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("@RULES@", rules, "@PRODUCER@", quoted(prodMetrics), "@PROJECTORS@", quoted(projMetrics),
		"@API@", quoted(api), "@REDIS_EXPORTER@", quoted(expAddr), "@POSTGRES_EXPORTER@", quoted(pgExpAddr),
		"@SWEEPER@", quoted(sweepMetrics),
		"@PROMETHEUS@", quoted(promAddr),
		"scrape_interval: 5s", "scrape_interval: 1s", "evaluation_interval: 5s", "evaluation_interval: 1s").Replace(string(tmpl))
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startTool(t, prom, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	q := promClient{base: "http://" + promAddr}

	waitFor(t, "http://"+api, "SKU-000042", func(product) bool { return true })
	// Two rounds some seconds apart: rates over a minute need the
	// counters to move between samples, and the second round reaches
	// Prometheus after it scraped the first.
	load(t, conn, "http://"+api, 150)
	time.Sleep(3 * time.Second)
	load(t, conn, "http://"+api, 150)

	// Every target scraped; the load then shows in rates and quantiles.
	testenv.Eventually(t, 60*time.Second, "every target up", func() string {
		res, err := q.query("up == 1")
		if err == nil && len(res) == 7 {
			return ""
		}
		return fmt.Sprintf("%d of 7 targets up (%v)", len(res), err)
	})

	t.Run("dashboard queries answer", func(t *testing.T) {
		for title, exprs := range dashboardQueries(t) {
			for _, expr := range exprs {
				q.mustAnswer(t, title, expr)
			}
		}
	})
	t.Run("rules evaluate", func(t *testing.T) {
		for _, r := range loadRules(t) {
			if r.Record != "" {
				q.mustAnswer(t, r.Record, r.Expr)
				continue
			}
			if _, err := q.query(r.Expr); err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
			}
		}
	})
	t.Run("every named metric exists", func(t *testing.T) {
		known, err := q.metricNames()
		if err != nil {
			t.Fatal(err)
		}
		var exprs []string
		for _, r := range loadRules(t) {
			exprs = append(exprs, r.Expr)
		}
		for _, es := range dashboardQueries(t) {
			exprs = append(exprs, es...)
		}
		for _, e := range exprs {
			for _, m := range metricName.FindAllString(e, -1) {
				if !known[m] && !slices.Contains(troubleOnly, m) {
					t.Errorf("%s is named in %q but no target exports it", m, e)
				}
			}
		}
	})
}

// metricName finds the metric names of our programs and the Redis and
// PostgreSQL exporters in an expression (recording rules are named
// stock:..., with a colon).
var metricName = regexp.MustCompile(`\b(stock|redis|pg)_[a-z0-9_]+\b`)

func quoted(addr string) string { return `"` + addr + `"` }

// startTool runs a command-line tool for the test's life.
func startTool(t *testing.T, path string, args ...string) {
	t.Helper()
	startToolEnv(t, nil, path, args...)
}

// startToolEnv runs a command-line tool for the test's life, with env
// ("NAME=value") added to the test's environment.
func startToolEnv(t *testing.T, env []string, path string, args ...string) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), filepath.Base(path)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	p := &proc{name: filepath.Base(path), cmd: cmd, out: out}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("---- %s output (tail) ----\n%s", p.name, tail(b, 4000))
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// load makes changes stock changes through the SQL write API, a few at a
// time over several seconds (rates need samples on both sides), reading
// products through the query API meanwhile.
func load(t *testing.T, conn *pgx.Conn, api string, changes int) {
	t.Helper()
	const perTick = 20 // 20 changes and 20 reads every 100 ms: 300 take 1.5 s
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < changes; i++ {
		if i%perTick == 0 {
			<-tick.C
		}
		id := fmt.Sprintf("SKU-%06d", i%200+1)
		exec1(t, conn, `SELECT stock_receive($1, $2, 1, 'ops')`, id, fmt.Sprintf("WH-%02d", i%5+1))
		resp, err := http.Get(api + "/v1/stock/" + id)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// promClient queries Prometheus's HTTP API.
type promClient struct{ base string }

type promAnswer struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	// Data is {"result": [...]} for queries, a list for label values.
	Data json.RawMessage `json:"data"`
}

func (c promClient) get(path string, params url.Values) (promAnswer, error) {
	var a promAnswer
	resp, err := http.Get(c.base + path + "?" + params.Encode())
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	if a.Status != "success" {
		return a, fmt.Errorf("%s", a.Error)
	}
	return a, nil
}

func (c promClient) query(expr string) ([]json.RawMessage, error) {
	a, err := c.get("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	var d struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(a.Data, &d); err != nil {
		return nil, err
	}
	return d.Result, nil
}

// mustAnswer fails the test when expr errors, or still has no series after
// a while (recording rules and 5m quantiles need a few evaluations).
func (c promClient) mustAnswer(t *testing.T, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		res, err := c.query(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", what, expr, err)
			return
		}
		if len(res) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %q answers no series", what, expr)
			return
		}
		time.Sleep(time.Second)
	}
}

func (c promClient) metricNames() (map[string]bool, error) {
	a, err := c.get("/api/v1/label/__name__/values", nil)
	if err != nil {
		return nil, err
	}
	var list []string
	if err := json.Unmarshal(a.Data, &list); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, n := range list {
		names[n] = true
	}
	return names, nil
}
