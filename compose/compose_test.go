// Package compose holds the docker compose file of the system and a test
// that keeps it in agreement with the local stack (Docker cannot run here,
// so the file is checked, not started).
package compose

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type service struct {
	Volumes     []string          `yaml:"volumes"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Build       *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
}

func load(t *testing.T) map[string]service {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("parsing docker-compose.yml: %v", err)
	}
	return f.Services
}

// The local stack's defaults (scripts/stack.sh and the programs' flags).
const (
	pgPort    = "5432"
	kafkaPort = "9092"
	redisPort = "6379"
	apiPort   = "8080"
)

func TestComposeMatchesLocalStack(t *testing.T) {
	svcs := load(t)
	for _, name := range []string{"postgres", "kafka", "redis", "producer", "projector", "query-api", "setup", "simulator", "sweeper"} {
		if _, ok := svcs[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	ports := []struct{ service, port string }{
		{"postgres", pgPort}, {"kafka", kafkaPort}, {"redis", redisPort}, {"query-api", apiPort},
		{"producer", "9101"}, {"projector", "9102"}, {"sweeper", "9103"},
	}
	for _, p := range ports {
		t.Run("port "+p.service, func(t *testing.T) {
			want := "127.0.0.1:" + p.port + ":" + p.port
			if !slices.Contains(svcs[p.service].Ports, want) {
				t.Fatalf("%s ports %v, want %s", p.service, svcs[p.service].Ports, want)
			}
		})
	}
	t.Run("postgres is logical and uses the stack's credentials", func(t *testing.T) {
		pg := svcs["postgres"]
		if !slices.Contains(pg.Command, "wal_level=logical") {
			t.Fatalf("postgres command %v lacks wal_level=logical", pg.Command)
		}
		env := pg.Environment
		if env["POSTGRES_USER"] != "stock" || env["POSTGRES_PASSWORD"] != "stock" || env["POSTGRES_DB"] != "stock" {
			t.Fatalf("postgres env %v, want stock/stock/stock", env)
		}
	})
	t.Run("kafka is 4.x KRaft without auto topic creation", func(t *testing.T) {
		k := svcs["kafka"]
		if !regexp.MustCompile(`^apache/kafka:4\.`).MatchString(k.Image) {
			t.Fatalf("kafka image %q, want apache/kafka:4.x", k.Image)
		}
		if k.Environment["KAFKA_PROCESS_ROLES"] != "broker,controller" {
			t.Fatalf("kafka roles %q, want combined KRaft", k.Environment["KAFKA_PROCESS_ROLES"])
		}
		// The producer creates its topics with the right cleanup policy;
		// auto-created topics would be neither compacted nor partitioned right.
		if k.Environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] != "false" {
			t.Fatal("kafka must not auto-create topics")
		}
		if !strings.Contains(k.Environment["KAFKA_ADVERTISED_LISTENERS"], "127.0.0.1:"+kafkaPort) {
			t.Fatalf("kafka must advertise 127.0.0.1:%s to host clients", kafkaPort)
		}
	})
	t.Run("programs point at the compose services", func(t *testing.T) {
		for _, name := range []string{"producer", "projector", "query-api", "setup", "simulator", "sweeper"} {
			s := svcs[name]
			if s.Build == nil || s.Build.Dockerfile != "compose/Dockerfile" {
				t.Fatalf("%s must build from compose/Dockerfile", name)
			}
			env := s.Environment
			if env["STOCK_PG_URL"] != "postgres://stock:stock@postgres:"+pgPort+"/stock?sslmode=disable" ||
				env["STOCK_REDIS_ADDR"] != "redis:"+redisPort || !strings.HasPrefix(env["STOCK_KAFKA_BROKERS"], "kafka:") {
				t.Fatalf("%s environment %v does not point at the compose services", name, env)
			}
		}
		if got := svcs["query-api"].Command; !slices.Contains(got, ":"+apiPort) {
			t.Fatalf("query-api command %v does not listen on %s", got, apiPort)
		}
	})
	// As make run: the sweeper expires reservations and serves its metrics
	// where Prometheus scrapes them; the simulator leaves expiry to it.
	t.Run("the sweeper sweeps, the simulator does not", func(t *testing.T) {
		if got := svcs["sweeper"].Command; len(got) < 2 || !slices.Equal(got[:2], []string{"warehouse", "sweep"}) || !slices.Contains(got, ":9103") {
			t.Fatalf("sweeper command %v, want warehouse sweep --metrics-addr :9103", got)
		}
		if got := svcs["simulator"].Command; !slices.Contains(got, "--no-sweep") {
			t.Fatalf("simulator command %v lacks --no-sweep", got)
		}
	})
	t.Run("dockerfile builds every program", func(t *testing.T) {
		b, err := os.ReadFile("Dockerfile")
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range []string{"producer", "projector", "query-api", "scripts/warehouse"} {
			if _, err := os.Stat(filepath.Join("..", prog, "main.go")); err != nil {
				t.Fatalf("program %s: %v", prog, err)
			}
			if !strings.Contains(string(b), "./"+prog) {
				t.Fatalf("Dockerfile does not build %s", prog)
			}
		}
	})
}

// Prometheus and Grafana of compose load the repository's rules and
// dashboard (not copies), and Prometheus names its jobs as the local
// stack does: the rules and the dashboard select on those names.
func TestComposeMonitoring(t *testing.T) {
	svcs := load(t)
	for _, m := range []struct{ service, file string }{
		{"prometheus", "../scripts/prometheus/rules.yml"},
		{"prometheus", "./prometheus.yml"},
		{"grafana", "../scripts/grafana/stock-pipeline.json"},
		{"grafana", "./grafana/datasources.yml"},
		{"grafana", "./grafana/dashboards.yml"},
	} {
		mounted := slices.ContainsFunc(svcs[m.service].Volumes, func(v string) bool { return strings.HasPrefix(v, m.file+":") })
		if !mounted {
			t.Errorf("%s does not mount %s", m.service, m.file)
		}
		if _, err := os.Stat(m.file); err != nil {
			t.Errorf("%s mounts %s: %v", m.service, m.file, err)
		}
	}
	jobs := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range regexp.MustCompile(`(?m)^\s*- job_name: (\S+)`).FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
		slices.Sort(names)
		return names
	}
	local, composed := jobs("../scripts/prometheus/prometheus.yml.tmpl"), jobs("prometheus.yml")
	if len(local) == 0 || !slices.Equal(local, composed) {
		t.Errorf("compose Prometheus jobs %v, local stack's %v: they must be the same", composed, local)
	}

	// The exporters watch the compose services (PostgreSQL as the stack's
	// application role, as scripts/stack.sh does) and Prometheus scrapes
	// each under the job name the rules select on.
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ service, image, env, want, job, target string }{
		{"redis-exporter", "oliver006/redis_exporter:", "REDIS_ADDR", "redis://redis:" + redisPort, "redis", "redis-exporter:9121"},
		{"postgres-exporter", "quay.io/prometheuscommunity/postgres-exporter:", "DATA_SOURCE_NAME",
			"postgres://stock:stock@postgres:" + pgPort + "/stock?sslmode=disable", "postgres", "postgres-exporter:9187"},
	} {
		t.Run(e.service, func(t *testing.T) {
			s, ok := svcs[e.service]
			if !ok {
				t.Fatalf("service %s missing", e.service)
			}
			if !strings.HasPrefix(s.Image, e.image) {
				t.Errorf("%s image %q, want %s...", e.service, s.Image, e.image)
			}
			if s.Environment[e.env] != e.want {
				t.Errorf("%s %s=%q, want %q", e.service, e.env, s.Environment[e.env], e.want)
			}
			job := regexp.MustCompile(`(?m)^\s*- job_name: ` + regexp.QuoteMeta(e.job) + `\n\s*static_configs: \[\{targets: \["` + regexp.QuoteMeta(e.target) + `"\]\}\]`)
			if !job.Match(b) {
				t.Errorf("compose Prometheus has no job %s scraping %s", e.job, e.target)
			}
		})
	}
}

// The producer's state store is on a named volume, so that a new container
// (an upgrade) starts from it instead of rebuilding it from Kafka.
func TestProducerStateOnAVolume(t *testing.T) {
	p := load(t)["producer"]
	i := slices.Index(p.Command, "--state-dir")
	if i < 0 || i+1 >= len(p.Command) {
		t.Fatalf("producer command %v sets no --state-dir", p.Command)
	}
	dir := p.Command[i+1]
	if !slices.ContainsFunc(p.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+dir) && !strings.HasPrefix(v, ".") }) {
		t.Errorf("no named volume mounted at %s: %v", dir, p.Volumes)
	}
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "chown nobody "+dir) {
		t.Errorf("the Dockerfile does not give %s to the user the programs run as", dir)
	}
}
