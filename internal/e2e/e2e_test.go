// Package e2e holds the end-to-end tests: the three programs built from
// source and run as processes against the real PostgreSQL, Kafka and Redis
// of the local stack, each test with its own slot, topics, group, key prefix
// and port. It has no code outside tests.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

var (
	buildMu sync.Mutex
	binDir  string
	built   = map[string]error{}
)

// binary builds a program once per test run and returns its path. The
// programs run without the race detector: the in-process tests of each
// package run with it, and a race-instrumented producer is several times
// slower, which would make these timing-bound tests measure the detector.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "stock-e2e-bin")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	err, ok := built[name]
	if !ok {
		out, berr := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "../../"+name).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build %s: %v\n%s", name, berr, out)
		}
		built[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a program under test; its output goes to a file shown on failure.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *os.File
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t, name), args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("---- %s output (tail) ----\n%s", name, b)
		}
	})
	return p
}

// logged reports whether the program's output contains s.
func (p *proc) logged(s string) bool {
	b, _ := os.ReadFile(p.out.Name())
	return strings.Contains(string(b), s)
}

// waitLog waits until the program's output contains s.
func (p *proc) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !p.logged(s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %s within %s", p.name, s, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resume continues a process stopped with SIGSTOP.
func (p *proc) resume() { _ = p.cmd.Process.Signal(syscall.SIGCONT) }

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

type pipeline struct {
	api  string
	slot string
	// prefix is the topic prefix, group the projector's consumer group,
	// metrics the address of the projector's /metrics.
	prefix, group, metrics string
	projector, queryAPI    *proc
	// producer runs with producerArgs (a test may stop it and start
	// another with the same arguments).
	producer     *proc
	producerArgs []string
	// stateDir is the producer's state store (--state-dir).
	stateDir string
}

// startPipeline runs producer, projector and query API on names of their
// own, capturing the database conn is connected to.
func startPipeline(t *testing.T, conn *pgx.Conn) pipeline {
	t.Helper()
	return startPipelineWith(t, conn, pipelineOpts{})
}

// pipelineOpts changes what startPipelineWith runs against.
type pipelineOpts struct {
	brokers []string // Kafka seeds (nil: the local stack's)
	// redis are the projector's and query API's Redis flags (nil:
	// --redis-addr of the local stack); projector more projector flags.
	redis, projector []string
	// api are more query API flags.
	api []string
	// holdProjector stops the projector (SIGSTOP) before the producer
	// starts; the test resumes it (p.projector.resume).
	holdProjector bool
}

// startPipelineWith is startPipeline with opts.
func startPipelineWith(t *testing.T, conn *pgx.Conn, opts pipelineOpts) pipeline {
	t.Helper()
	seeds := opts.brokers
	if seeds == nil {
		seeds = testenv.KafkaBrokers()
	}
	redisArgs := opts.redis
	if redisArgs == nil {
		redisArgs = []string{"--redis-addr", testenv.RedisAddr()}
	}
	name := testenv.Name(t, "e2e")
	prefix := name + "."
	brokers := strings.Join(seeds, ",")
	api, metrics := freePort(t), freePort(t)
	pj := start(t, "projector", append(append([]string{
		"--brokers", brokers, "--topic", prefix + "stock.levels.v1", "--group", name,
		"--redis-prefix", name + ":", "--metrics-addr", metrics}, redisArgs...), opts.projector...)...)
	qa := start(t, "query-api", append([]string{"--addr", api, "--redis-prefix", name + ":",
		"--levels-topic", prefix + "stock.levels.v1"}, slices.Concat(redisArgs, opts.api)...)...)
	if opts.holdProjector {
		if err := pj.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// A stopped process ignores the SIGINT that ends the test.
		t.Cleanup(pj.resume)
	}
	// The producer starts last, as on a fresh system where the projector
	// comes up before the topics exist.
	stateDir := t.TempDir()
	producerArgs := []string{"--postgres-url", conn.Config().ConnString(), "--slot", name, "--publication", name,
		"--brokers", brokers, "--topic-prefix", prefix, "--partitions", "3", "--metrics-addr", "", "--state-dir", stateDir}
	pr := start(t, "producer", producerArgs...)
	t.Cleanup(func() { cleanupTopicsOn(t, seeds, prefix) })
	return pipeline{api: "http://" + api, slot: name, prefix: prefix, group: name, metrics: metrics,
		projector: pj, queryAPI: qa, producer: pr, producerArgs: producerArgs, stateDir: stateDir}
}

type warehouseRow struct {
	WarehouseID string `json:"warehouse_id"`
	OnHand      int64  `json:"on_hand"`
	Reserved    int64  `json:"reserved"`
	Available   int64  `json:"available"`
	Status      string `json:"status"`
}

type product struct {
	ProductID  string         `json:"product_id"`
	OnHand     int64          `json:"on_hand"`
	Reserved   int64          `json:"reserved"`
	Available  int64          `json:"available"`
	Status     string         `json:"status"`
	Warehouses []warehouseRow `json:"warehouses"`
	Position   string         `json:"position"`
	CommitTime time.Time      `json:"commit_time"`
}

func (w product) warehouse(id string) warehouseRow {
	for _, r := range w.Warehouses {
		if r.WarehouseID == id {
			return r
		}
	}
	return warehouseRow{}
}

// waitFor polls GET /v1/stock/{id} until ok accepts the answer.
func waitFor(t *testing.T, base, id string, ok func(product) bool) product {
	t.Helper()
	var got product
	testenv.Eventually(t, 60*time.Second, "product "+id+" to reach the expected state", func() string {
		resp, err := http.Get(base + "/v1/stock/" + id)
		if err != nil {
			return err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			var p product
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
			if ok(p) {
				got = p
				return ""
			}
		}
		return fmt.Sprintf("last answer: %d %s", resp.StatusCode, body)
	})
	return got
}

// db creates a migrated database of the test's own, seeded with products x
// warehouses of demo stock (SKU-000001.., WH-01..), and connects to it.
func db(t *testing.T, products, warehouses int) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.Database(t, "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if err := inventorydb.Migrate(ctx, conn); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	if products > 0 {
		if err := inventorydb.Seed(ctx, conn, products, warehouses); err != nil {
			t.Fatalf("seeding: %v", err)
		}
	}
	return conn
}

func exec1(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newProduct creates a product stocked in two warehouses of its own.
func newProduct(t *testing.T, conn *pgx.Conn, id string, wh1, wh2 string) {
	t.Helper()
	exec1(t, conn, `INSERT INTO warehouses (warehouse_id, name) VALUES ($1, $1), ($2, $2) ON CONFLICT DO NOTHING`, wh1, wh2)
	exec1(t, conn, `INSERT INTO products (product_id, name) VALUES ($1, $1)`, id)
	exec1(t, conn, `SELECT stock_receive($1, $2, 100, 'e2e')`, id, wh1)
	exec1(t, conn, `SELECT stock_receive($1, $2, 40, 'e2e')`, id, wh2)
}

// ident is a unique upper-case id in the API's id charset.
func ident(t *testing.T, prefix string) string {
	return strings.ToUpper(strings.ReplaceAll(testenv.Name(t, prefix), "_", "-"))
}

func TestWalkingSkeleton(t *testing.T) {
	conn := db(t, 100, 20)
	id := ident(t, "SKU")
	wh1, wh2 := ident(t, "WHA"), ident(t, "WHB")
	// Seeded before the producer starts: served through the snapshot path.
	newProduct(t, conn, id, wh1, wh2)

	p := startPipeline(t, conn)

	got := waitFor(t, p.api, id, func(p product) bool { return p.OnHand == 140 })
	if len(got.Warehouses) != 2 || got.warehouse(wh1).OnHand != 100 || got.warehouse(wh2).OnHand != 40 {
		t.Fatalf("snapshot answer = %+v, want %s=100 and %s=40", got, wh1, wh2)
	}
	seeded := waitFor(t, p.api, "SKU-000042", func(product) bool { return true })
	var onHand, reserved int64
	var rows int
	if err := conn.QueryRow(context.Background(), `SELECT sum(on_hand), sum(reserved), count(*) FROM inventory_levels WHERE product_id = 'SKU-000042'`).Scan(&onHand, &reserved, &rows); err != nil {
		t.Fatal(err)
	}
	if seeded.OnHand != onHand || seeded.Reserved != reserved || len(seeded.Warehouses) != rows || rows != 20 {
		t.Fatalf("seeded SKU-000042 = on_hand %d reserved %d in %d warehouses; postgres has %d, %d in %d",
			seeded.OnHand, seeded.Reserved, len(seeded.Warehouses), onHand, reserved, rows)
	}

	t.Run("adjust reaches the API", func(t *testing.T) {
		exec1(t, conn, `SELECT stock_adjust($1, $2, -7, 'damaged', 'e2e-adjust')`, id, wh1)
		got := waitFor(t, p.api, id, func(p product) bool { return p.warehouse(wh1).OnHand == 93 })
		if got.OnHand != 133 {
			t.Fatalf("total on_hand after adjust = %d, want 133", got.OnHand)
		}
	})

	t.Run("transfer moves stock and keeps the total", func(t *testing.T) {
		before := waitFor(t, p.api, id, func(product) bool { return true })
		exec1(t, conn, `SELECT stock_transfer($1, $2, $3, 30, 'e2e-transfer')`, id, wh1, wh2)
		got := waitFor(t, p.api, id, func(p product) bool { return p.warehouse(wh2).OnHand == 70 })
		if got.warehouse(wh1).OnHand != 63 || got.OnHand != before.OnHand {
			t.Fatalf("after transfer %+v; want %s=63 and total %d", got, wh1, before.OnHand)
		}
		if got.Position == before.Position {
			t.Fatalf("position did not move: %s", got.Position)
		}
	})

	t.Run("a product created while streaming is served", func(t *testing.T) {
		id2 := ident(t, "SKU")
		newProduct(t, conn, id2, wh1, wh2)
		got := waitFor(t, p.api, id2, func(p product) bool { return p.OnHand == 140 })
		if got.Available != 140 || got.Status != "IN_STOCK" {
			t.Fatalf("new product = %+v", got)
		}
	})

	t.Run("ready while the projector runs", func(t *testing.T) {
		waitReady(t, p.api, "ready while the projector runs")
	})

	t.Run("bulk answers found and not found", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"product_ids": []string{id, "SKU-DOES-NOT-EXIST"}})
		resp, err := http.Post(p.api+"/v1/stock/bulk", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Products []product `json:"products"`
			NotFound []string  `json:"not_found"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || len(out.Products) != 1 || out.Products[0].ProductID != id ||
			len(out.NotFound) != 1 || out.NotFound[0] != "SKU-DOES-NOT-EXIST" {
			t.Fatalf("bulk = %d %+v", resp.StatusCode, out)
		}
	})
}
