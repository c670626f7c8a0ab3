package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

// tool returns the path of a program the test needs. Missing, it skips the
// test on a developer's machine and fails it in CI: scripts/tools.sh
// installs it.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed: run scripts/tools.sh", name)
		}
		t.Skipf("%s not installed: run scripts/tools.sh", name)
	}
	return p
}

// avroPython returns a Python interpreter that has Apache Avro's library.
// Debian's python3-avro installs it for Debian's interpreter, which need not
// be the first python3 on PATH.
func avroPython(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("STOCK_PYTHON"), "python3", "/usr/bin/python3"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if exec.Command(c, "-c", "import avro.io, avro.schema").Run() == nil {
			return c
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no python3 with the avro module: run scripts/tools.sh (Debian package python3-avro)")
	}
	t.Skip("no python3 with the avro module: run scripts/tools.sh (Debian package python3-avro)")
	return ""
}

// kcatRecord is one record as kcat read it and testdata/confluent_avro.py
// decoded it.
type kcatRecord struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       *string           `json:"key"`
	Headers   map[string]string `json:"headers"`
	SchemaID  *uint32           `json:"schema_id"`
	Value     map[string]any    `json:"value"`
}

// kcatRead reads every committed record of topic with kcat and decodes
// every value with the registry at registryURL.
func kcatRead(t *testing.T, kcat, python, registryURL, topic string) []kcatRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// %K and %S (lengths, -1 for null) make the output binary-safe: the
	// values are Avro bytes.
	var raw, stderr bytes.Buffer
	read := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(testenv.KafkaBrokers(), ","), "-t", topic,
		"-e", "-q", "-X", "isolation.level=read_committed", "-f", `%p\t%o\t%K\t%k\t%h\t%S\t%s\n`)
	read.Stdout, read.Stderr = &raw, &stderr
	if err := read.Run(); err != nil {
		t.Fatalf("kcat reading %s: %v\n%s", topic, err, stderr.String())
	}
	var out bytes.Buffer
	stderr.Reset()
	dec := exec.CommandContext(ctx, python, "testdata/confluent_avro.py", registryURL)
	dec.Stdin, dec.Stdout, dec.Stderr = &raw, &out, &stderr
	if err := dec.Run(); err != nil {
		t.Fatalf("decoding %s as a non-Go consumer: %v\n%s", topic, err, stderr.String())
	}
	var recs []kcatRecord
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("decoder output %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// num reads an Avro long or int from a decoded JSON value.
func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// TestIndependentClient reads the producer's topics with kcat, a client that
// shares no code with ours, and decodes the Avro values the way a consumer
// in another language does: by the schema id in each value, from the schema
// registry the producer registered its schemas with.
func TestIndependentClient(t *testing.T) {
	kcat := tool(t, "kcat")
	python := avroPython(t)
	registryURL := testenv.RequireSchemaRegistry(t)
	// A small seeded table besides the test's product: every value is
	// decoded, and pure-Python Avro is slow.
	conn := db(t, 30, 3)
	name := testenv.Name(t, "kcat")
	prefix := name + "."
	id := ident(t, "SKU")
	wh1, wh2 := ident(t, "WHA"), ident(t, "WHB")
	newProduct(t, conn, id, wh1, wh2)

	reg := startRegistryProducer(t, conn, name, registryURL)
	exec1(t, conn, `SELECT stock_adjust($1, $2, -7, 'damaged', 'kcat-adjust')`, id, wh1)

	// The adjust is the last level of the product once it is in Kafka.
	levelsTopic := prefix + schemas.TopicLevels
	var levels []kcatRecord
	var last *kcatRecord
	deadline := time.Now().Add(60 * time.Second)
	for {
		levels = kcatRead(t, kcat, python, registryURL, levelsTopic)
		last = nil
		for i := range levels {
			if r := &levels[i]; r.Key != nil && *r.Key == id {
				last = r
			}
		}
		if last != nil && last.Value != nil && num(last.Value["on_hand"]) == 133 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcat never read the adjusted level of %s; last: %+v", id, last)
		}
		time.Sleep(500 * time.Millisecond)
	}

	t.Run("keys are product ids", func(t *testing.T) {
		if len(levels) < 31 {
			t.Fatalf("kcat read %d levels, want the 30 seeded products and the test's", len(levels))
		}
		for _, r := range levels {
			// A tombstone (null value) is a product with no rows left.
			if r.Key == nil || (r.Value != nil && r.Value["product_id"] != *r.Key) {
				t.Fatalf("record %d@%d: key %v, value %v", r.Partition, r.Offset, r.Key, r.Value)
			}
			// ce_id of a level is <position>/<product_id>.
			if !strings.HasSuffix(r.Headers[schemas.HeaderID], "/"+*r.Key) {
				t.Fatalf("record %d@%d: key %q, ce_id %q", r.Partition, r.Offset, *r.Key, r.Headers[schemas.HeaderID])
			}
		}
	})

	t.Run("CloudEvents headers on every record", func(t *testing.T) {
		for _, r := range levels {
			h := r.Headers
			where := fmt.Sprintf("record %d@%d", r.Partition, r.Offset)
			for _, k := range []string{schemas.HeaderID, schemas.HeaderType, schemas.HeaderSource, schemas.HeaderTime, schemas.HeaderSpecVersion} {
				if h[k] == "" {
					t.Fatalf("%s lacks header %s: %v", where, k, h)
				}
			}
			if h[schemas.HeaderSpecVersion] != "1.0" || h[schemas.HeaderSource] != "/stock-producer/"+name ||
				h[schemas.HeaderContentType] != "application/avro" {
				t.Fatalf("%s headers %v", where, h)
			}
			if _, err := time.Parse(time.RFC3339Nano, h[schemas.HeaderTime]); err != nil {
				t.Fatalf("%s ce_time: %v", where, err)
			}
		}
		if got := last.Headers[schemas.HeaderType]; got != "warehouse.stock.adjusted" {
			t.Fatalf("adjust has ce_type %q, want warehouse.stock.adjusted", got)
		}
	})

	t.Run("Avro values decode by their registry schema id", func(t *testing.T) {
		ss, err := reg.SchemaByVersion(context.Background(), schemas.Subject(levelsTopic), -1)
		if err != nil {
			t.Fatalf("the producer registered no schema for %s: %v", levelsTopic, err)
		}
		if last.SchemaID == nil || *last.SchemaID != uint32(ss.ID) || ss.ID == 0 {
			t.Fatalf("level framed with schema id %v, subject %s has id %d", last.SchemaID, ss.Subject, ss.ID)
		}
		v := last.Value
		if num(v["on_hand"]) != 133 || v["status"] != schemas.StatusInStock || v["snapshot"] != false {
			t.Fatalf("decoded level %v, want on_hand 133, IN_STOCK, streamed", v)
		}
		whs, _ := v["warehouses"].([]any)
		got := map[string]int64{}
		for _, w := range whs {
			w, _ := w.(map[string]any)
			got[fmt.Sprint(w["warehouse_id"])] = num(w["on_hand"])
		}
		if len(got) != 2 || got[wh1] != 93 || got[wh2] != 40 {
			t.Fatalf("decoded warehouses %v, want %s=93 and %s=40", got, wh1, wh2)
		}
	})

	t.Run("changes decode too", func(t *testing.T) {
		var change *kcatRecord
		recs := kcatRead(t, kcat, python, registryURL, prefix+schemas.TopicChanges)
		for i := range recs {
			r := &recs[i]
			if r.Key == nil || r.Value == nil || r.Value["product_id"] != *r.Key {
				t.Fatalf("change %d@%d: key %v, value %v", r.Partition, r.Offset, r.Key, r.Value)
			}
			if *r.Key == id && r.Value["op"] == schemas.OpUpdate {
				change = r
			}
		}
		if change == nil {
			t.Fatalf("no update of %s among %d change records", id, len(recs))
		}
		after, _ := change.Value["after"].(map[string]any)
		before, _ := change.Value["before"].(map[string]any)
		if change.Value["warehouse_id"] != wh1 || num(after["on_hand"]) != 93 || num(before["on_hand"]) != 100 ||
			change.Value["change_kind"] != "adjust" || change.Value["change_ref"] != "kcat-adjust" {
			t.Fatalf("decoded change %v", change.Value)
		}
		if !strings.HasSuffix(change.Headers[schemas.HeaderID], "/"+id+"/"+wh1) {
			t.Fatalf("change ce_id %q", change.Headers[schemas.HeaderID])
		}
	})
}

// startRegistryProducer starts a producer on conn's database that writes
// topics under name + "." with its schemas in the registry, and returns once
// it streams. The topics and the registry's subjects go at the test's end.
func startRegistryProducer(t *testing.T, conn *pgx.Conn, name, registryURL string) *sr.Client {
	t.Helper()
	prefix := name + "."
	t.Cleanup(func() { cleanupTopics(t, prefix) })
	reg, err := schemas.NewRegistryClient(schemas.RegistryConfig{URL: registryURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, topic := range []string{schemas.TopicLevels, schemas.TopicChanges, schemas.TopicAlerts} {
			subject := schemas.Subject(prefix + topic)
			_, _ = reg.DeleteSubject(context.Background(), subject, sr.SoftDelete)
			_, _ = reg.DeleteSubject(context.Background(), subject, sr.HardDelete)
		}
	})
	p := start(t, "producer",
		"--postgres-url", conn.Config().ConnString(), "--slot", name, "--publication", name,
		"--brokers", strings.Join(testenv.KafkaBrokers(), ","), "--topic-prefix", prefix, "--partitions", "3",
		"--metrics-addr", "", "--schema-registry-url", registryURL, "--state-dir", t.TempDir())
	// The producer prints "producer: <error>" when it exits; failing then
	// beats waiting out the timeout.
	for deadline := time.Now().Add(2 * time.Minute); !p.logged(`"replication started"`); {
		if p.logged("producer: ") || time.Now().After(deadline) {
			t.Fatal("the producer did not start streaming")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return reg
}
