package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

func TestParseConfig(t *testing.T) {
	testenv.ClearStockEnv(t)
	tests := []testenv.ConfigCase[*config]{
		{Name: "defaults", Check: func(c *config) bool {
			p := c.pipeline()
			return c.command == "run" && strings.Join(c.Kafka.Brokers, ",") == "127.0.0.1:9092" &&
				p.Slot == "stock_cdc" && p.Publication == "stock_pub" && p.Partitions == 6 && p.BatchMaxRecords == 20_000 &&
				p.BatchLinger == 5*time.Millisecond && p.ShutdownTimeout == 10*time.Second && p.KafkaMetadataMinAge == 50*time.Millisecond &&
				p.LevelsTopic == schemas.TopicLevels && p.TransactionalID == "stock-producer-stock_cdc" &&
				c.MetricsAddr == "127.0.0.1:9101" && c.MemoryLimitMiB == 1024 && p.KafkaCompression == "lz4"
		}},
		{Name: "compression from the environment", Env: map[string]string{"STOCK_PRODUCER_KAFKA_COMPRESSION": "zstd"},
			Check: func(c *config) bool { return c.pipeline().KafkaCompression == "zstd" }},
		{Name: "unknown compression", Args: []string{"--kafka-compression", "brotli"}, WantErr: []string{"--kafka-compression"}},
		{Name: "environment fallback", Env: map[string]string{"STOCK_KAFKA_BROKERS": "k1:9092,k2:9092", "STOCK_SLOT": "s1",
			"STOCK_TOPIC_PREFIX": "t1.", "STOCK_PG_URL": "postgres://u:p@db/x", "STOCK_PRODUCER_TAKE_OVER_SLOT": "true"},
			Check: func(c *config) bool {
				p := c.pipeline()
				return strings.Join(p.Kafka.Brokers, ",") == "k1:9092,k2:9092" && p.Slot == "s1" && p.PostgresURL == "postgres://u:p@db/x" &&
					p.LevelsTopic == "t1.stock.levels.v1" && p.CheckpointTopic == "t1.stock.producer.checkpoints" &&
					p.TransactionalID == "stock-producer-s1-t1.stock.producer.checkpoints" && p.TakeOverSlot
			}},
		{Name: "flag beats environment", Args: []string{"--slot", "s2", "status"}, Env: map[string]string{"STOCK_SLOT": "s1"},
			Check: func(c *config) bool { return c.Slot == "s2" && c.command == "status" }},
		{Name: "every problem reported", Args: []string{"--slot", "Bad-Slot", "--brokers", "", "--partitions=-1",
			"--replication-factor", "1", "--min-insync-replicas", "3", "--batch-linger", "5s", "--kafka-metadata-min-age", "1ms"},
			WantErr: []string{"invalid configuration", `slot "Bad-Slot"`, "kafka: no broker", "partitions -1",
				"min.insync.replicas 3", "batch linger 5s", "kafka metadata min age 1ms"}},
		{Name: "unknown log level", Args: []string{"--log-level", "loud"}, WantErr: []string{"--log-level"}},
	}
	testenv.RunConfigCases(t, tests, parse)
}

// --help prints every flag with its variable and default, and run ends
// without an error and without starting anything.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, testenv.Getenv(nil), &out); err != nil {
		t.Fatalf("run --help: %v", err)
	}
	for _, w := range []string{"Usage: producer", "--brokers=127.0.0.1:9092", "$STOCK_KAFKA_BROKERS",
		`--slot="stock_cdc"`, "--partitions=6", "--batch-linger=5ms", "resnapshot"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("help lacks %q:\n%s", w, out.String())
		}
	}
}

// run end to end, configured through the environment as the stack scripts
// do: the snapshot reaches Kafka, the metrics endpoint counts it, status
// and resnapshot answer beside the running producer, and cancelling the
// context stops run cleanly.
func TestRunCapturesAndStops(t *testing.T) {
	ctx := context.Background()
	name := testenv.Name(t, "producer_main")
	url := testenv.Database(t, "producer_main")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := inventorydb.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.Seed(ctx, conn, 3, 2); err != nil {
		t.Fatal(err)
	}
	prefix := name + "."
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
		if err != nil {
			return
		}
		defer cl.Close()
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, prefix+schemas.TopicLevels, prefix+schemas.TopicChanges,
			prefix+schemas.TopicAlerts, prefix+"stock.producer.checkpoints")
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()

	getenv := testenv.Getenv(map[string]string{"STOCK_PG_URL": url, "STOCK_KAFKA_BROKERS": strings.Join(testenv.KafkaBrokers(), ","),
		"STOCK_SLOT": name, "STOCK_PUBLICATION": name, "STOCK_TOPIC_PREFIX": prefix, "STOCK_PARTITIONS": "2",
		"STOCK_PRODUCER_STATE_DIR": t.TempDir()})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(rctx, []string{"--metrics-addr", metricsAddr}, getenv, &logs) }()

	// Six rows seeded: three products in two warehouses.
	want := []string{"stock_producer_snapshot_rows_total 6", `stock_producer_records_produced_total{topic="` + prefix + schemas.TopicLevels + `"} 3`,
		"stock_producer_kafka_"}
	waitFor(t, "/metrics", &logs, func() string { return missingMetrics(metricsAddr, want) })

	waitFor(t, "status", &logs, func() string {
		var out bytes.Buffer
		err := run(ctx, []string{"status"}, getenv, &out)
		for _, w := range []string{"slot " + name + ": active=true", "snapshot done true", "topic " + prefix + schemas.TopicLevels + ": end offsets"} {
			if err != nil || !strings.Contains(out.String(), w) {
				return "status lacks " + w + ":\n" + out.String()
			}
		}
		return ""
	})
	var out bytes.Buffer
	if err := run(ctx, []string{"resnapshot", "--products", "P1"}, getenv, &out); err != nil ||
		!strings.Contains(out.String(), "resnapshot requested") {
		t.Errorf("resnapshot: %v\n%s", err, out.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(logs.String(), "producer stopped") {
		t.Errorf("no clean stop logged:\n%s", logs.String())
	}
}

// waitFor polls check until it returns "" or a minute passed, and shows
// the program's logs if it never does.
func waitFor(t *testing.T, what string, logs *testenv.SyncBuffer, check func() string) {
	t.Helper()
	failed := t.Failed()
	defer func() {
		if !failed && t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	testenv.Eventually(t, time.Minute, what, check)
}

// missingMetrics says which strings of want addr's /metrics lacks ("" for
// none).
func missingMetrics(addr string, want []string) string {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err.Error()
	}
	var missing []string
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			missing = append(missing, w)
		}
	}
	return strings.Join(missing, ", ")
}

// parse is parseConfig as the configuration table calls it.
func parse(args []string, getenv func(string) string) (*config, error) {
	return parseConfig(args, getenv, io.Discard)
}
