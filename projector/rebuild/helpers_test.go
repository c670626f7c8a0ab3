package rebuild

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/projector/consume"
	"github.com/stockpipe/stock/schemas"
)

// These tests run against the local stack's real Kafka and Redis, each with
// its own topic, consumer group and key prefix. A rebuild runs beside a
// live projector (projector/consume), as in production.

var testLog = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func pos(lsn uint64, idx uint32) position.Position { return position.Position{LSN: lsn, Index: idx} }

// levelRecord is a stock.levels.v1 record of product id with one warehouse
// whose on_hand tells which write it was.
func levelRecord(t testing.TB, topic, id string, p position.Position, onHand int64) *kgo.Record {
	t.Helper()
	var codec schemas.Codec
	status := schemas.Status(onHand, 5)
	ct := time.Now().UTC()
	v, err := codec.EncodeLevel(&schemas.StockLevel{
		ProductID: id, OnHand: onHand, Available: onHand, Status: status,
		Warehouses: []schemas.WarehouseStock{{
			WarehouseID: "WH-01", OnHand: int32(onHand), Available: int32(onHand),
			LowStockThreshold: 5, Status: status, UpdatedAt: ct,
		}},
		Position: schemas.PositionOf(p), TxID: 7, CommitTime: ct,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(id), Value: v, Headers: ceID(p, id)}
}

func tombstoneRecord(topic, id string, p position.Position) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(id), Headers: ceID(p, id)}
}

// ceID is the CloudEvents id and source the producer stamps on a record.
func ceID(p position.Position, id string) []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: schemas.HeaderID, Value: []byte(p.String() + "/" + id)},
		{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "test")}}
}

func adminClient(t *testing.T) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// newTopic creates a unique topic, deleted (with its dead-letter topic)
// when the test ends.
func newTopic(t *testing.T, adm *kadm.Client, partitions int32) string {
	t.Helper()
	topic := testenv.Name(t, "test_levels")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("creating topic %s on %v (start the stack with scripts/stack.sh): %v", topic, testenv.KafkaBrokers(), err)
	}
	t.Cleanup(func() {
		if _, err := adm.DeleteTopics(context.Background(), topic, topic+consume.DeadLetterSuffix); err != nil {
			t.Logf("deleting topic %s: %v", topic, err)
		}
	})
	return topic
}

// newGroup names a unique consumer group, deleted when the test ends (after
// the consumers started later have stopped: cleanups run last-in first-out).
func newGroup(t *testing.T, adm *kadm.Client) string {
	group := testenv.Name(t, "test_projector")
	t.Cleanup(func() {
		if _, err := adm.DeleteGroup(context.Background(), group); err != nil {
			t.Logf("deleting group %s: %v", group, err)
		}
	})
	return group
}

// producer writes records in Kafka transactions, like the producer.
type producer struct{ cl *kgo.Client }

func newProducer(t *testing.T) *producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...),
		kgo.TransactionalID(testenv.Name(t, "test_txn")), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &producer{cl: cl}
}

func (p *producer) write(recs ...*kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.cl.BeginTransaction(); err != nil {
		return err
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = p.cl.EndTransaction(ctx, kgo.TryAbort)
		return err
	}
	return p.cl.EndTransaction(ctx, kgo.TryCommit)
}

// produce writes recs in one committed Kafka transaction.
func produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	if err := newProducer(t).write(recs...); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// startConsumer runs a live projector of topic in group until the test
// ends, and reports Run's error to the test.
func startConsumer(t *testing.T, topic, group string, store consume.Store) *consume.Consumer {
	t.Helper()
	cfg := consume.DefaultConfig()
	cfg.Kafka.Brokers = testenv.KafkaBrokers()
	cfg.Topic = topic
	cfg.Group = group
	cfg.DeadLetterTopic = topic + consume.DeadLetterSuffix
	cfg.BatchSize = 50
	cfg.RetryMin = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.DrainTimeout = 5 * time.Second
	c, err := consume.New(cfg, store, testLog, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consumer: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("consumer did not stop")
		}
	})
	return c
}

// waitCaughtUp waits until group has committed every partition of topic up
// to its current end offset. Offsets are committed once Redis acknowledged
// the batch, watermark included: the projection of the topic is complete.
func waitCaughtUp(t *testing.T, adm *kadm.Client, group, topic string) {
	t.Helper()
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("listing end offsets: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, "the group to commit up to the end offsets", func() bool {
		got, err := adm.FetchOffsetsForTopics(ctx, group, topic)
		if err != nil {
			return false
		}
		caughtUp := true
		ends.Each(func(o kadm.ListedOffset) {
			c, _ := got.Lookup(topic, o.Partition)
			caughtUp = caughtUp && (o.Offset == 0 || c.At >= o.Offset)
		})
		return caughtUp
	})
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func rebuildConfig(topic string) Config {
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = testenv.KafkaBrokers()
	cfg.Topic = topic
	cfg.BatchSize = 100
	return cfg
}
