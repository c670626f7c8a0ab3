package consume

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/stockpipe/stock/internal/testenv"
)

// On the plaintext stack a missing dead-letter topic is created, and an
// existing one is left as it is.
func TestEnsureTopicCreatesOnlyWhatIsMissing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := testenv.Name(t, "test_dlq")
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic) })
	if err := ensureTopic(ctx, cl, topic); err != nil {
		t.Fatalf("creating a missing dead-letter topic: %v", err)
	}
	// Metadata shows a new topic a moment after its creation.
	for d, err := adm.ListTopics(ctx, topic); err != nil || !d.Has(topic); d, err = adm.ListTopics(ctx, topic) {
		if ctx.Err() != nil {
			t.Fatalf("topic %s not listed after ensureTopic: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := ensureTopic(ctx, cl, topic); err != nil {
		t.Errorf("an existing dead-letter topic: %v", err)
	}
}

// On the secure stack the projector's principal may write its dead-letter
// topic but not create topics: it must find the existing one without asking
// to create it, and say so clearly when the topic is not there to find.
func TestEnsureTopicNeedsNoCreateRight(t *testing.T) {
	s := testenv.Secure(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers...), kgo.DialTLSConfig(s.TLSConfig(t, "")),
		kgo.SASL(scram.Auth{User: testenv.KafkaProjector, Pass: s.Password(t, "kafka", testenv.KafkaProjector)}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := ensureTopic(ctx, cl, "stock.levels.v1"+DeadLetterSuffix); err != nil {
		t.Errorf("the existing dead-letter topic as %s: %v", testenv.KafkaProjector, err)
	}
	err = ensureTopic(ctx, cl, testenv.Name(t, "test_dlq"))
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("a topic the projector may not see or create: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}
