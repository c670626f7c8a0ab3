package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
)

// cleanupSources drops the test's slot, publication and topics once its
// programs have stopped, so runs do not pile up WAL or topics.
func cleanupSources(t *testing.T, name, topicPrefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, testenv.PostgresURL()); err == nil {
		for i := 0; i < 50; i++ {
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, name)
			var active bool
			_ = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, name).Scan(&active)
			if err == nil && !active {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		_, _ = conn.Exec(ctx, `DROP PUBLICATION IF EXISTS `+pgx.Identifier{name}.Sanitize())
		conn.Close(ctx)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.KafkaBrokers()...))
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
		if len(tp) > len(topicPrefix) && tp[:len(topicPrefix)] == topicPrefix {
			drop = append(drop, tp)
		}
	}
	if len(drop) > 0 {
		_, _ = adm.DeleteTopics(ctx, drop...)
	}
}
