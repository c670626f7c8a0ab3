package api

import (
	"testing"

	"github.com/stockpipe/stock/schemas"
)

// The query API repeats the levels topic's name instead of linking the
// Kafka contract; this keeps the two in step.
func TestDefaultWatermarkTopicIsTheLevelsTopic(t *testing.T) {
	if DefaultWatermarkTopic != schemas.TopicLevels {
		t.Fatalf("DefaultWatermarkTopic = %q, want %q", DefaultWatermarkTopic, schemas.TopicLevels)
	}
}
