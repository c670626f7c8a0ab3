package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

func TestParseConfig(t *testing.T) {
	testenv.ClearStockEnv(t)
	tests := []testenv.ConfigCase[*config]{
		{Name: "defaults", Check: func(c *config) bool {
			return strings.Join(c.Kafka.Brokers, ",") == "127.0.0.1:9092" && c.Topic == schemas.TopicLevels &&
				c.Group == "stock-projector" && c.Redis.Prefix == "stock:" && c.MetricsAddr == "127.0.0.1:9102"
		}},
		{Name: "environment fallback", Env: map[string]string{"STOCK_KAFKA_BROKERS": "k1:9092,k2:9092", "STOCK_REDIS_ADDR": "r:6379"},
			Check: func(c *config) bool {
				return strings.Join(c.Kafka.Brokers, ",") == "k1:9092,k2:9092" && c.Redis.Addr == "r:6379"
			}},
		{Name: "flag beats environment", Args: []string{"--group", "g2"}, Env: map[string]string{"STOCK_PROJECTOR_GROUP": "g1"},
			Check: func(c *config) bool { return c.Group == "g2" }},
		{Name: "waiting for replicas", Args: []string{"--redis-wait-replicas", "1", "--redis-wait-timeout", "250ms"},
			Check: func(c *config) bool { return c.RedisWaitReplicas == 1 && c.RedisWaitTimeout == 250*time.Millisecond }},
		{Name: "a replica wait longer than a round trip", Args: []string{"--redis-wait-replicas", "1", "--redis-wait-timeout", "10s"},
			WantErr: []string{"redis wait timeout 10s", "less than the apply timeout"}},
		{Name: "replica waits on a Cluster", Args: []string{"--redis-wait-replicas", "1", "--redis-cluster"},
			WantErr: []string{"not supported on a Redis Cluster"}},
		{Name: "every problem reported", Args: []string{"--batch-size", "0", "--redis-prefix", "a{b", "--group", ""},
			WantErr: []string{"batch size", "brace", "consumer group"}},
	}
	testenv.RunConfigCases(t, tests, parse)
}

// --help prints every flag with its variable and default (those of the
// shared connection groups and of projector/consume included), and run ends
// without an error and without starting anything.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"rebuild", "--help"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, testenv.Getenv(nil), &out); err != nil {
			t.Fatalf("run %v: %v", args, err)
		}
		want := []string{"Usage: projector", "--brokers=127.0.0.1:9092", "$STOCK_KAFKA_BROKERS", `--redis-addr="127.0.0.1:6379"`,
			"$STOCK_REDIS_ADDR", `--redis-prefix="stock:"`, "--batch-size=1000", "--apply-timeout=5s", "--cache-check-interval=5s"}
		if args[0] == "rebuild" {
			want = append(want, "--workers=4", "--retire-delay=3s")
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v lacks %q:\n%s", args, w, out.String())
			}
		}
	}
}

// run end to end: a record in a fresh topic reaches Redis, the metrics
// endpoint counts it, and cancelling the context stops run cleanly.
func TestRunProjectsAndStops(t *testing.T) {
	// Transactional, as the producer writes: the projector refuses
	// anything else by default.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...), kgo.TransactionalID(testenv.Name(t, "test_txn")))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	topic := testenv.Name(t, "test_levels")
	group := testenv.Name(t, "test_projector")
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, topic); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	t.Cleanup(func() {
		adm.DeleteTopic(context.Background(), topic)
		adm.DeleteGroup(context.Background(), group)
	})
	rdb := storetest.Client(t)
	prefix := storetest.Prefix(t, rdb)
	st, err := stockstore.New(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}

	var codec schemas.Codec
	p := position.Position{LSN: 42, Index: 1}
	v, err := codec.EncodeLevel(&schemas.StockLevel{ProductID: "SKU-1", OnHand: 5, Available: 5,
		Status: schemas.StatusInStock, Position: schemas.PositionOf(p), CommitTime: time.Now(),
		Warehouses: []schemas.WarehouseStock{{WarehouseID: "WH-01", OnHand: 5, Available: 5, Status: schemas.StatusInStock}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := kcl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := kcl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte("SKU-1"), Value: v,
		Headers: []kgo.RecordHeader{{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "test")}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := kcl.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--topic", topic, "--group", group, "--redis-prefix", prefix, "--metrics-addr", metricsAddr},
			testenv.Getenv(map[string]string{"STOCK_KAFKA_BROKERS": strings.Join(testenv.KafkaBrokers(), ","), "STOCK_REDIS_ADDR": testenv.RedisAddr()}),
			&logs)
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := st.Get(context.Background(), "SKU-1")
		if err == nil && got.OnHand == 5 {
			break
		}
		if err != nil && !errors.Is(err, stockstore.ErrNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot never reached redis\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The snapshot is in Redis before the worker counts it applied: poll.
	wantMetrics := []string{"stock_projector_records_consumed_total 1", "stock_projector_snapshots_applied_total 1", "stock_projector_kafka_"}
	deadline = time.Now().Add(30 * time.Second)
	for {
		missing := missingMetrics(metricsAddr, wantMetrics)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q\n%s", missing, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
}

// missingMetrics returns the strings of want that addr's /metrics lacks
// (all of them if it cannot be read).
func missingMetrics(addr string, want []string) []string {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return want
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return want
	}
	var missing []string
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// parse is parseConfig as the configuration table calls it.
func parse(args []string, getenv func(string) string) (*config, error) {
	return parseConfig(args, getenv, io.Discard)
}
