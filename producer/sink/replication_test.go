package sink

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func fakeAdmin(t *testing.T, brokers int) *kadm.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// Left to the cluster, a single broker gets factor 1 (the local stack) and
// a cluster of 3 or more factor 3 with min.insync.replicas 2, so that a
// broker can die without losing a committed record; explicit values stay.
func TestChooseReplication(t *testing.T) {
	for _, tt := range []struct {
		brokers           int
		factor, minInsync int
		wantF, wantI      int
		chosen            bool
	}{
		{1, 0, 0, 1, 1, true},
		{3, 0, 0, 3, 2, true},
		{4, 0, 0, 3, 2, true},
		{3, 1, 0, 1, 1, false},
		{3, 0, 1, 3, 1, true},
		{3, 2, 2, 2, 2, false},
	} {
		t.Run(strconv.Itoa(tt.brokers)+"brokers", func(t *testing.T) {
			r, err := ChooseReplication(context.Background(), fakeAdmin(t, tt.brokers), int16(tt.factor), tt.minInsync)
			if err != nil || int(r.Factor) != tt.wantF || r.MinInsync != tt.wantI || r.FactorChosen != tt.chosen {
				t.Errorf("factor %d, min.insync %d on %d brokers: got %+v, %v; want %d, %d, chosen %v",
					tt.factor, tt.minInsync, tt.brokers, r, err, tt.wantF, tt.wantI, tt.chosen)
			}
		})
	}
	if _, err := ChooseReplication(context.Background(), fakeAdmin(t, 1), 0, 2); err == nil {
		t.Error("min.insync.replicas 2 over a factor 1 chosen for one broker was accepted")
	}
}

// A topic created with factor 1 before the cluster grew fails the check
// once the factor follows the cluster: loud, not silently under-replicated.
func TestExistingUnreplicatedTopicOnACluster(t *testing.T) {
	ctx := context.Background()
	adm := fakeAdmin(t, 3)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "levels"); err != nil {
		t.Fatal(err)
	}
	r, err := ChooseReplication(ctx, adm, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	specs := []TopicSpec{{Name: "levels", Partitions: 3, ReplicationFactor: r.Factor}}
	if err := EnsureTopics(ctx, adm, specs); !errors.Is(err, ErrTopicMismatch) {
		t.Fatalf("an existing factor-1 topic on 3 brokers: %v, want ErrTopicMismatch", err)
	}
}
