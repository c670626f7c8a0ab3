package status

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/kafkaconn"
	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

// Against the local stack's real Kafka and Redis: a group caught up on one
// partition and behind on the other, one partition applied in Redis, one
// dead letter.
func TestStatusNamesPartitionsLagAndDeadLetters(t *testing.T) {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	topic := testenv.Name(t, "test_levels")
	dlqTopic, group := topic+".dlq", testenv.Name(t, "test_projector")
	for topic, parts := range map[string]int32{topic: 2, dlqTopic: 1} {
		if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
			t.Fatalf("creating topic %s (start the stack with scripts/stack.sh): %v", topic, err)
		}
	}
	t.Cleanup(func() {
		_, _ = adm.DeleteTopics(context.Background(), topic, dlqTopic)
		_, _ = adm.DeleteGroup(context.Background(), group)
	})
	var recs []*kgo.Record
	for i := range 3 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte{'a' + byte(i)}})
	}
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 1, Key: []byte{'a' + byte(i)}})
	}
	recs = append(recs, &kgo.Record{Topic: dlqTopic, Key: []byte("x")})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var offs kadm.Offsets
	offs.AddOffset(topic, 0, 3, -1) // caught up
	offs.AddOffset(topic, 1, 2, -1) // 3 behind
	if err := adm.CommitAllOffsets(ctx, group, offs); err != nil {
		t.Fatal(err)
	}

	st, _ := storetest.New(t)
	gen, _, err := st.InitGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := position.Position{LSN: 0x16B3748, Index: 3}
	if _, err := st.Apply(ctx, []stockstore.Snapshot{{ProductID: "a", Position: p, OnHand: 1}},
		stockstore.Watermark{Topic: topic, Partition: 0, Offset: 2, Position: p, CommitTime: time.Now()}); err != nil {
		t.Fatal(err)
	}

	s := Read(ctx, Config{Kafka: kafkaconn.Config{Brokers: testenv.KafkaBrokers()}, Topic: topic, Group: group, DeadLetterTopic: dlqTopic}, st)
	var out bytes.Buffer
	if err := s.Write(&out, time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Logf("status:\n%s", out.String())
	if len(s.Errs) > 0 {
		t.Errorf("errors: %v", s.Errs)
	}
	if s.Lag != 3 || len(s.Partitions) != 2 || s.Partitions[1].Lag != 3 || s.DeadLetters != 1 || s.Generation != gen {
		t.Errorf("status %+v; want lag 3 on partition 1, 1 dead letter, generation %d", s, gen)
	}
	for _, re := range []string{
		`total lag 3`,
		`(?m)^0\s+3\s+3\s+0\s+-\s+2\s+0/16B3748:3\s`, // partition end committed lag owner applied position
		`(?m)^1\s+5\s+2\s+3\s+-\s+-\s+-`,
		`generation \d+, pointer active`,
		`dead letters in ` + regexp.QuoteMeta(dlqTopic) + `: 1 held`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("status output does not match %q", re)
		}
	}
	if !strings.Contains(out.String(), "heartbeat NONE") {
		t.Errorf("status output does not say no projector is alive")
	}
}
