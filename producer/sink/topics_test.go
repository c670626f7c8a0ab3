package sink

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
)

func TestEnsureTopicsCreatesThenValidates(t *testing.T) {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	name := testenv.Name(t, "sink")
	specs := Specs(name+".levels", name+".changes", name+".alerts", name+".cp", 3, 1, 1, 3600_000)
	t.Cleanup(func() {
		_, _ = adm.DeleteTopics(context.Background(), name+".levels", name+".changes", name+".alerts", name+".cp", name+".wrong")
	})

	if err := EnsureTopics(ctx, adm, specs); err != nil {
		t.Fatalf("creating: %v", err)
	}
	if err := EnsureTopics(ctx, adm, specs); err != nil {
		t.Fatalf("validating what was just created: %v", err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, name+".levels")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(name+".levels", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.MaybeValue() != "compact" {
			t.Fatalf("levels topic cleanup.policy = %s, want compact", c.MaybeValue())
		}
	}

	for _, tc := range []struct {
		name   string
		mutate func(s *TopicSpec)
	}{
		{"partition count", func(s *TopicSpec) { s.Partitions = 5 }},
		{"cleanup policy", func(s *TopicSpec) { s.Configs["cleanup.policy"] = "delete" }},
	} {
		t.Run("mismatched "+tc.name, func(t *testing.T) {
			bad := Specs(name+".levels", name+".changes", name+".alerts", name+".cp", 3, 1, 1, 3600_000)
			tc.mutate(&bad[0])
			err := EnsureTopics(ctx, adm, bad)
			if !errors.Is(err, ErrTopicMismatch) {
				t.Fatalf("error = %v, want ErrTopicMismatch", err)
			}
		})
	}
}
