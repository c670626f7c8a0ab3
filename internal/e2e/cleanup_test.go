package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
)

// cleanupTopics deletes the test's topics once its programs have stopped;
// its database, with the slot and publication in it, goes with
// testenv.Database.
func cleanupTopics(t *testing.T, topicPrefix string) {
	cleanupTopicsOn(t, testenv.KafkaBrokers(), topicPrefix)
}

// cleanupTopicsOn is cleanupTopics on the cluster of brokers.
func cleanupTopicsOn(t *testing.T, brokers []string, topicPrefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return
	}
	var drop []string
	for _, tp := range topics.Names() {
		if strings.HasPrefix(tp, topicPrefix) {
			drop = append(drop, tp)
		}
	}
	if len(drop) > 0 {
		_, _ = adm.DeleteTopics(ctx, drop...)
	}
}
