package status_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/producer/cdc"
	"github.com/stockpipe/stock/producer/status"
)

// A running producer's status names its slot, the ledger's owner, the
// last checkpoint and the records written.
func TestStatusOfARunningProducer(t *testing.T) {
	ctx := context.Background()
	name := testenv.Name(t, "status")
	url := testenv.Database(t, "status")
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
	cfg := cdc.Config{PostgresURL: url, Slot: name, Publication: name, Kafka: kafkaconn.Config{Brokers: testenv.KafkaBrokers()},
		LevelsTopic: name + ".levels", ChangesTopic: name + ".changes", AlertsTopic: name + ".alerts",
		CheckpointTopic: name + ".checkpoints", Partitions: 2, StateDir: t.TempDir()}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
		if err == nil {
			_, _ = kadm.NewClient(cl).DeleteTopics(ctx, cfg.LevelsTopic, cfg.ChangesTopic, cfg.AlertsTopic, cfg.CheckpointTopic)
			cl.Close()
		}
	})
	p, err := cdc.New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), cdc.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	defer func() { cancel(); <-done }()

	scfg := status.Config{PostgresURL: url, Slot: name, Kafka: cfg.Kafka, CheckpointTopic: cfg.CheckpointTopic,
		Topics: []string{cfg.LevelsTopic, cfg.ChangesTopic, cfg.AlertsTopic}}
	want := []string{"slot " + name + ": active=true", `ledger: owner "kafka cluster `, "checkpoint: commit", "snapshot done true",
		"topic " + cfg.LevelsTopic + ": end offsets 0:", "topic " + cfg.ChangesTopic + ": end offsets 0:"}
	var out bytes.Buffer
	deadline := time.Now().Add(60 * time.Second)
	for {
		out.Reset()
		err := status.Print(ctx, scfg, &out)
		missing := ""
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				missing = w
			}
		}
		empty := false
		for _, line := range strings.Split(out.String(), "\n") {
			if (strings.HasPrefix(line, "topic "+cfg.LevelsTopic+":") || strings.HasPrefix(line, "topic "+cfg.ChangesTopic+":")) &&
				strings.Contains(line, "(total 0,") {
				empty = true
			}
		}
		if err == nil && missing == "" && !empty {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status lacks %q (err %v):\n%s", missing, err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
