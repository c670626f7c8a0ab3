package sink

import (
	"context"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Replication is what new topics get, and what existing ones are checked
// against, when the configuration leaves it to the cluster (0).
type Replication struct {
	Factor       int16
	MinInsync    int
	Brokers      int  // brokers in the cluster when it was chosen
	FactorChosen bool // the factor followed the cluster's size
}

// ChooseReplication settles a replication factor and min.insync.replicas of
// 0 ("auto") from the cluster's size: on 3 brokers or more, factor 3 and
// min.insync.replicas 2, so that one broker can die (or restart) without
// losing a committed record or stopping the producer; on fewer, 1 and 1, as
// on a local single-node stack. Explicit values are kept. An existing topic
// that was created with factor 1 on what is now a cluster then fails the
// topic check, naming the flag that keeps it as it is.
//
// The count is of the brokers alive now, so a cluster with a broker down
// looks smaller than it is: an existing topic among topics with a higher
// factor than the count gives raises the choice to that factor, so that a
// restart during a broker's outage keeps the topics as they are instead of
// failing their check.
func ChooseReplication(ctx context.Context, adm *kadm.Client, factor int16, minInsync int, topics ...string) (Replication, error) {
	r := Replication{Factor: factor, MinInsync: minInsync}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return r, fmt.Errorf("counting the cluster's brokers: %w", err)
	}
	r.Brokers = len(brokers)
	if factor > 0 && minInsync > 0 {
		return r, nil
	}
	if r.Factor == 0 {
		r.Factor, r.FactorChosen = 1, true
		if r.Brokers >= 3 {
			r.Factor = 3
		}
		var existing kadm.TopicDetails
		if len(topics) > 0 { // none would list every topic
			if existing, err = adm.ListTopics(ctx, topics...); err != nil {
				return r, fmt.Errorf("describing the topics: %w", err)
			}
		}
		for _, td := range existing {
			if n := td.Partitions.NumReplicas(); td.Err == nil && n > int(r.Factor) && n <= math.MaxInt16 {
				r.Factor = int16(n)
			}
		}
	}
	if r.MinInsync == 0 {
		r.MinInsync = 1
		if r.Factor >= 3 {
			r.MinInsync = 2
		}
	}
	if r.MinInsync > int(r.Factor) {
		return r, fmt.Errorf("min.insync.replicas %d is more than replication factor %d", r.MinInsync, r.Factor)
	}
	return r, nil
}

// TransactionLogRisk describes what is unsafe about the broker's
// transaction state log (__transaction_state) on a cluster of brokers: a
// replication factor of 1, or a min.insync.replicas that lets one broker's
// loss lose a transaction's state. "" when it is safe, on a single broker
// (nothing to replicate to), or when the log does not exist yet (the
// broker creates it with transaction.state.log.replication.factor).
func TransactionLogRisk(ctx context.Context, adm *kadm.Client, brokers int) (string, error) {
	const topic = "__transaction_state"
	if brokers < 3 {
		return "", nil
	}
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return "", fmt.Errorf("describing %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return "", nil
	}
	if n := d.Partitions.NumReplicas(); n < 3 {
		return fmt.Sprintf("%s has replication factor %d on a cluster of %d brokers: losing one broker can lose "+
			"the state of open transactions (set transaction.state.log.replication.factor=3 before the log is created, "+
			"or reassign its partitions)", topic, n, brokers), nil
	}
	return "", nil
}
