package sink

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

// On the secure stack an administrator creates the producer's topics and
// the producer's principal has no right to create any: EnsureTopics must
// find them laid out as the producer would have made them (the stack's
// list and Specs must not drift apart) without asking to create one.
func TestEnsureTopicsAcceptsTheSecureStacksTopics(t *testing.T) {
	s := testenv.Secure(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers...), kgo.DialTLSConfig(s.TLSConfig(t, "")),
		kgo.SASL(scram.Auth{User: testenv.KafkaProducer, Pass: s.Password(t, "kafka", testenv.KafkaProducer)}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The producer's defaults: 6 partitions, replication 1, min.insync.replicas 1,
	// 7 days of retention, the default checkpoint topic.
	specs := Specs(schemas.TopicLevels, schemas.TopicChanges, schemas.TopicAlerts, "stock.producer.checkpoints",
		6, 1, 1, (7 * 24 * time.Hour).Milliseconds())
	if err := EnsureTopics(ctx, kadm.NewClient(cl), specs); err != nil {
		t.Errorf("validating the secure stack's topics as %s: %v", testenv.KafkaProducer, err)
	}
}
