package consume

import (
	"context"
	"testing"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/testenv"
)

// A fresh system starts producer and projector together: the projector must
// not fail because the producer has not created the topic yet.
func TestHasCommittedOffsetsBeforeTheTopicExists(t *testing.T) {
	found, err := HasCommittedOffsets(context.Background(), kafkaconn.Config{Brokers: testenv.KafkaBrokers()}, testenv.Name(t, "group"), testenv.Name(t, "no_topic"))
	if err != nil || found {
		t.Fatalf("HasCommittedOffsets on a missing topic = %v, %v; want false, nil", found, err)
	}
}
