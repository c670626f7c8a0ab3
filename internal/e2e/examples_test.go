package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

// The consumers in docs/examples are what another team starts from: they
// must work against the real pipeline, as documented, with nothing of ours
// but the topics, the registry and the contract.

// examplesPython is the interpreter of the examples' virtualenv, which
// scripts/examples.sh makes (confluent-kafka and fastavro, pinned).
func examplesPython(t *testing.T) string {
	t.Helper()
	p := os.Getenv("STOCK_EXAMPLES_PYTHON")
	if p == "" {
		p, _ = filepath.Abs("../../.local/examples-venv/bin/python")
	}
	if exec.Command(p, "-c", "import confluent_kafka, fastavro").Run() != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s lacks confluent_kafka or fastavro: run scripts/examples.sh", p)
		}
		t.Skipf("%s lacks confluent_kafka or fastavro: run scripts/examples.sh", p)
	}
	return p
}

// pgLevel is a product's stock as PostgreSQL holds it.
type pgLevel struct {
	OnHand, Reserved, Available int64
	Warehouses                  map[string][2]int64 // on_hand, reserved
}

func levelInPostgres(t *testing.T, conn *pgx.Conn, id string) pgLevel {
	t.Helper()
	l := pgLevel{Warehouses: map[string][2]int64{}}
	rows, err := conn.Query(context.Background(),
		`SELECT warehouse_id, on_hand, reserved, safety_stock FROM inventory_levels WHERE product_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var wh string
		var onHand, reserved, safety int64
		if err := rows.Scan(&wh, &onHand, &reserved, &safety); err != nil {
			t.Fatal(err)
		}
		l.OnHand += onHand
		l.Reserved += reserved
		l.Available += onHand - reserved - safety
		l.Warehouses[wh] = [2]int64{onHand, reserved}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return l
}

// pythonOutput is what levels_consumer.py prints: one line per product
// asked for, then a summary.
type pythonOutput struct {
	level struct {
		Found bool `json:"found"`
		Level *struct {
			OnHand     int64 `json:"on_hand"`
			Reserved   int64 `json:"reserved"`
			Available  int64 `json:"available"`
			Warehouses []struct {
				WarehouseID string `json:"warehouse_id"`
				OnHand      int64  `json:"on_hand"`
				Reserved    int64  `json:"reserved"`
			} `json:"warehouses"`
		} `json:"level"`
	}
	summary struct {
		Products  int   `json:"products"`
		Available int64 `json:"available"`
	}
}

func runPythonConsumer(t *testing.T, python, registryURL, topic, product string) pythonOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, "../../docs/examples/python/levels_consumer.py",
		"--bootstrap", strings.Join(testenv.KafkaBrokers(), ","), "--registry", registryURL,
		"--topic", topic, "--product", product)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("levels_consumer.py: %v\n%s", err, stderr.String())
	}
	var out pythonOutput
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan(); i++ {
		target := any(&out.level)
		if i > 0 {
			target = &out.summary
		}
		if err := json.Unmarshal(sc.Bytes(), target); err != nil {
			t.Fatalf("levels_consumer.py printed %q: %v", sc.Text(), err)
		}
	}
	return out
}

// The Python example keeps every product's stock from stock.levels.v1 and
// prints the one asked for equal to PostgreSQL, after snapshot and stream.
func TestPythonConsumerExample(t *testing.T) {
	python := examplesPython(t)
	registryURL := testenv.RequireSchemaRegistry(t)
	conn := db(t, 30, 3)
	name := testenv.Name(t, "pyex")
	id := ident(t, "SKU")
	wh1, wh2 := ident(t, "WHA"), ident(t, "WHB")
	newProduct(t, conn, id, wh1, wh2) // in the snapshot
	startRegistryProducer(t, conn, name, registryURL)
	// Streamed: a reservation and an adjustment after the snapshot.
	exec1(t, conn, `SELECT stock_reserve('pyex-order', $1, $2, 5, interval '1 hour', false)`, id, wh2)
	exec1(t, conn, `SELECT stock_adjust($1, $2, -7, 'damaged', 'pyex-adjust')`, id, wh1)
	want := levelInPostgres(t, conn, id)

	topic := name + "." + schemas.TopicLevels
	var out pythonOutput
	// The consumer reads the topic to its end once per run: run it again
	// until the producer has written the adjustment.
	testenv.Eventually(t, time.Minute, "the Python consumer reads the adjusted level", func() bool {
		out = runPythonConsumer(t, python, registryURL, topic, id)
		return out.level.Level != nil && out.level.Level.OnHand == want.OnHand && out.level.Level.Reserved == want.Reserved
	})
	got := out.level.Level
	if got.Available != want.Available || len(got.Warehouses) != len(want.Warehouses) {
		t.Errorf("python consumer: available %d, %d warehouses; PostgreSQL: %d, %d", got.Available, len(got.Warehouses), want.Available, len(want.Warehouses))
	}
	for _, w := range got.Warehouses {
		if pg := want.Warehouses[w.WarehouseID]; pg != [2]int64{w.OnHand, w.Reserved} {
			t.Errorf("warehouse %s: python consumer on_hand %d reserved %d; PostgreSQL %v", w.WarehouseID, w.OnHand, w.Reserved, pg)
		}
	}
	// Every product of the table is in its map, with PostgreSQL's stock.
	var products int
	var available int64
	if err := conn.QueryRow(context.Background(),
		`SELECT count(DISTINCT product_id), coalesce(sum(on_hand - reserved - safety_stock), 0) FROM inventory_levels`).Scan(&products, &available); err != nil {
		t.Fatal(err)
	}
	if out.summary.Products != products || out.summary.Available != available {
		t.Errorf("python consumer holds %d products, %d available; PostgreSQL %d, %d",
			out.summary.Products, out.summary.Available, products, available)
	}
}

// javaOutput is what ChangesConsumer.java prints: a summary, then one line
// per product asked for.
type javaOutput struct {
	summary struct {
		Records      int64    `json:"records"`
		DuplicateIDs int      `json:"duplicate_ids"`
		VersionGaps  []string `json:"version_gaps"`
	}
	product struct {
		Warehouses map[string]struct {
			OnHand   int64 `json:"on_hand"`
			Reserved int64 `json:"reserved"`
			Version  int64 `json:"version"`
		} `json:"warehouses"`
	}
}

func runJavaConsumer(t *testing.T, registryURL, topic, product string) javaOutput {
	t.Helper()
	java := tool(t, "java")
	cp, err := os.ReadFile("../../.local/examples-java.classpath")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Java example's classpath: %v (run scripts/examples.sh)", err)
		}
		t.Skipf("the Java example's classpath: %v (run scripts/examples.sh)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, java, "-cp", strings.TrimSpace(string(cp)),
		"../../docs/examples/java/src/main/java/example/stock/ChangesConsumer.java",
		"--bootstrap", strings.Join(testenv.KafkaBrokers(), ","), "--registry", registryURL,
		"--topic", topic, "--product", product)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ChangesConsumer.java: %v\n%s", err, stderr.String())
	}
	var out javaOutput
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("ChangesConsumer.java printed %d lines, want 2:\n%s", len(lines), stdout.String())
	}
	if err := json.Unmarshal([]byte(lines[0]), &out.summary); err != nil {
		t.Fatalf("summary %q: %v", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &out.product); err != nil {
		t.Fatalf("product %q: %v", lines[1], err)
	}
	return out
}

// The Java example reads every row change once from stock.changes.v1: no
// event id twice, each row's versions consecutive, and the rows of a
// product as their last change left them equal PostgreSQL's.
func TestJavaConsumerExample(t *testing.T) {
	registryURL := testenv.RequireSchemaRegistry(t)
	conn := db(t, 30, 3)
	name := testenv.Name(t, "javaex")
	id := ident(t, "SKU")
	wh1, wh2 := ident(t, "WHA"), ident(t, "WHB")
	newProduct(t, conn, id, wh1, wh2)
	startRegistryProducer(t, conn, name, registryURL)
	exec1(t, conn, `SELECT stock_reserve('javaex-order', $1, $2, 5, interval '1 hour', false)`, id, wh2)
	exec1(t, conn, `SELECT stock_adjust($1, $2, -7, 'damaged', 'javaex-adjust')`, id, wh1)
	exec1(t, conn, `SELECT stock_transfer($1, $2, $3, 10, 'javaex-transfer')`, id, wh1, wh2)
	type row struct{ onHand, reserved, version int64 }
	want := map[string]row{}
	rows, err := conn.Query(context.Background(),
		`SELECT warehouse_id, on_hand, reserved, version FROM inventory_levels WHERE product_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var wh string
		var r row
		if err := rows.Scan(&wh, &r.onHand, &r.reserved, &r.version); err != nil {
			t.Fatal(err)
		}
		want[wh] = r
	}
	rows.Close()

	topic := name + "." + schemas.TopicChanges
	var out javaOutput
	testenv.Eventually(t, time.Minute, "the Java consumer reads the transfer", func() bool {
		out = runJavaConsumer(t, registryURL, topic, id)
		return out.product.Warehouses[wh2].Version == want[wh2].version
	})
	t.Logf("java consumer: %d records, %d duplicate ids, %d version gaps", out.summary.Records, out.summary.DuplicateIDs, len(out.summary.VersionGaps))
	// 90 seeded rows and the test's two read by the snapshot, then four changes.
	if out.summary.Records < 96 || out.summary.DuplicateIDs != 0 || len(out.summary.VersionGaps) != 0 {
		t.Errorf("java consumer: %d records, %d event ids seen twice, version gaps %v; want >= 96, none, none",
			out.summary.Records, out.summary.DuplicateIDs, out.summary.VersionGaps)
	}
	if len(out.product.Warehouses) != len(want) {
		t.Errorf("java consumer holds %d warehouses of %s, PostgreSQL %d", len(out.product.Warehouses), id, len(want))
	}
	for wh, w := range want {
		got := out.product.Warehouses[wh]
		if got.OnHand != w.onHand || got.Reserved != w.reserved || got.Version != w.version {
			t.Errorf("%s/%s: java consumer %+v, PostgreSQL %+v", id, wh, got, w)
		}
	}
}
