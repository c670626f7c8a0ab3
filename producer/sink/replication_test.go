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

// A restart while a broker is down sees fewer brokers than the cluster has:
// topics already replicated beyond what that count gives keep their factor
// (and min.insync.replicas 2 with it), so their check passes and the
// producer carries on. Here 2 live brokers and an existing factor-3 topic;
// the real case is TestBrokerLossUnderLoad (internal/e2e).
func TestExistingReplicationOutlivesABrokerDown(t *testing.T) {
	ctx := context.Background()
	adm := fakeAdmin(t, 3)
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "levels"); err != nil {
		t.Fatal(err)
	}
	// Counted on a cluster of 2, the choice alone would be factor 1.
	two := fakeAdmin(t, 2)
	if _, err := two.CreateTopic(ctx, 3, 2, nil, "levels"); err != nil {
		t.Fatal(err)
	}
	r, err := ChooseReplication(ctx, two, 0, 0, "levels", "changes")
	if err != nil || r.Factor != 2 || r.MinInsync != 1 || r.Brokers != 2 {
		t.Fatalf("2 brokers, an existing factor-2 topic: got %+v, %v; want factor 2, min.insync 1", r, err)
	}
	r, err = ChooseReplication(ctx, adm, 0, 0, "levels", "changes")
	if err != nil || r.Factor != 3 || r.MinInsync != 2 {
		t.Fatalf("an existing factor-3 topic: got %+v, %v; want factor 3, min.insync 2", r, err)
	}
	specs := []TopicSpec{{Name: "levels", Partitions: 3, ReplicationFactor: r.Factor}}
	if err := EnsureTopics(ctx, adm, specs); err != nil {
		t.Fatalf("the existing topic against the kept factor: %v", err)
	}
}

// On a cluster, a transaction state log with one replica is named as a
// risk (the producer logs it at start); with three it is not, and on one
// broker there is nothing to say.
func TestTransactionLogRisk(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		brokers, factor int
		risky           bool
	}{{3, 1, true}, {3, 3, false}, {1, 1, false}} {
		adm := fakeAdmin(t, tt.brokers)
		if _, err := adm.CreateTopic(ctx, 3, int16(tt.factor), nil, "__transaction_state"); err != nil {
			t.Fatal(err)
		}
		risk, err := TransactionLogRisk(ctx, adm, tt.brokers)
		if err != nil || (risk != "") != tt.risky {
			t.Errorf("%d brokers, log at factor %d: risk %q, %v; want risky %v", tt.brokers, tt.factor, risk, err, tt.risky)
		}
	}
	risk, err := TransactionLogRisk(ctx, fakeAdmin(t, 3), 3)
	if err != nil || risk != "" {
		t.Errorf("no log yet: %q, %v; want nothing to say", risk, err)
	}
}
