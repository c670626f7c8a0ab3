package e2e

import (
	"context"
	"fmt"
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

// The projector tests feed the levels topic themselves (records exactly as
// the producer writes them), which makes the load and the expected final
// state exact, and run the projector binary as processes.

// pjTopic creates a unique levels topic (and deletes it and its dead-letter
// topic when the test ends).
func pjTopic(t *testing.T, partitions int32) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	topic := testenv.Name(t, "pj_levels")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, map[string]*string{"cleanup.policy": ptr("compact")}, topic); err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		_, _ = adm.DeleteTopics(context.Background(), topic, topic+".dlq")
		cl.Close()
	})
	return topic
}

func ptr[T any](v T) *T { return &v }

// pjStore is a store over a unique prefix, deleted at the end.
func pjStore(t *testing.T) *stockstore.Store {
	t.Helper()
	st, _ := storetest.New(t)
	return st
}

// levelRecord is a stock.levels.v1 record of product id with one warehouse
// whose on_hand says which write it was; LOW_STOCK below 5.
func levelRecord(t testing.TB, topic, id string, p position.Position, onHand int32) *kgo.Record {
	t.Helper()
	status := schemas.Status(int64(onHand), 5)
	ct := time.Now().UTC()
	var codec schemas.Codec
	v, err := codec.EncodeLevel(&schemas.StockLevel{
		ProductID: id, OnHand: int64(onHand), Available: int64(onHand), Status: status,
		Warehouses: []schemas.WarehouseStock{{
			WarehouseID: "WH-01", OnHand: onHand, Available: onHand,
			LowStockThreshold: 5, Status: status, UpdatedAt: ct,
		}},
		Position: schemas.PositionOf(p), TxID: 7, CommitTime: ct,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(id), Value: v, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderID, Value: []byte(p.String() + "/" + id)},
		{Key: schemas.HeaderTime, Value: []byte(ct.Format(time.RFC3339Nano))},
		{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "e2e")},
	}}
}

func tombstoneRecord(topic, id string, p position.Position) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(id), Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderID, Value: []byte(p.String() + "/" + id)},
		{Key: schemas.HeaderSource, Value: []byte(schemas.SourcePrefix + "e2e")},
	}}
}

// txProducer writes records in Kafka transactions, like the producer.
type txProducer struct{ cl *kgo.Client }

func newTxProducer(t *testing.T) *txProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...),
		kgo.TransactionalID(testenv.Name(t, "pj_txn")), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &txProducer{cl: cl}
}

func (p *txProducer) write(recs ...*kgo.Record) error {
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

// lastInTopic is the last record of every key in topic.
func lastInTopic(t *testing.T, topic string) map[string]*kgo.Record {
	t.Helper()
	out := map[string]*kgo.Record{}
	for _, r := range readAll(t, topic) {
		out[string(r.Key)] = r
	}
	return out
}

// positionOf reads the position a levels record carries.
func positionOf(t *testing.T, r *kgo.Record) position.Position {
	t.Helper()
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderID {
			s := string(h.Value)
			if i := strings.LastIndexByte(s, '/'); i > strings.IndexByte(s, ':') {
				s = s[:i]
			}
			p, err := position.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatalf("record of %s without %s", r.Key, schemas.HeaderID)
	return position.Position{}
}

// matchesTopic reports the first difference between the store and the last
// record of every product in topic ("" when none).
func matchesTopic(t *testing.T, st *stockstore.Store, last map[string]*kgo.Record) string {
	t.Helper()
	ctx := context.Background()
	for id, r := range last {
		p, deleted, ok, err := st.StoredPosition(ctx, id)
		want := positionOf(t, r)
		switch {
		case err != nil:
			return err.Error()
		case !ok:
			return fmt.Sprintf("%s missing", id)
		case p != want || deleted != (r.Value == nil):
			return fmt.Sprintf("%s at %s (deleted %v), topic's last at %s (tombstone %v)", id, p, deleted, want, r.Value == nil)
		}
	}
	return ""
}

func projectorArgs(topic, group, prefix string, extra ...string) []string {
	return append([]string{"--brokers", strings.Join(testenv.KafkaBrokers(), ","), "--topic", topic, "--group", group,
		"--redis-addr", testenv.RedisAddr(), "--redis-prefix", prefix, "--metrics-addr", "",
		"--batch-size", "200", "--drain-timeout", "5s"}, extra...)
}
