package storetest

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/stockstore"
)

// Replicated is a Redis primary with one replica, started for one test.
type Replicated struct {
	Primary redis.UniversalClient // as the programs make one
	Replica *redis.Client
	// ReplicaProcess is the replica's redis-server: a test stops it
	// (SIGSTOP) to hold its acknowledgements back.
	ReplicaProcess *exec.Cmd
}

// PrimaryReplica starts a primary and a replica of it (the machine's
// redis-server, without persistence) on free ports, and returns once the
// replica is in sync. Both are stopped when the test ends.
func PrimaryReplica(t testing.TB) Replicated {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2)
	startNode(t, dir, ports[0])
	replica := startNode(t, dir, ports[1], "--replicaof", "127.0.0.1", ports[0])
	ctx := context.Background()
	waitNode(t, "127.0.0.1:"+ports[1], func(c *redis.Client) error {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && !strings.Contains(info, "master_link_status:up") {
			err = errors.New("replica not in sync yet")
		}
		return err
	})
	cfg := stockstore.DefaultClientConfig()
	cfg.Addrs = []string{"127.0.0.1:" + ports[0]}
	primary := stockstore.NewClient(cfg)
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + ports[1]})
	t.Cleanup(func() { primary.Close(); rc.Close() })
	return Replicated{Primary: primary, Replica: rc, ReplicaProcess: replica}
}
