package stockstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is returned by a write that Redis applied but that fewer
// replicas than asked acknowledged in time. The caller treats it as a failed
// write: it does not commit the offsets of the batch and retries it, which
// positions make harmless.
var ErrNotReplicated = errors.New("redis: not acknowledged by enough replicas")

// replicaWait is how many replicas must hold a batch before a write returns,
// and how long to wait for them (Redis WAIT).
type replicaWait struct {
	replicas int
	timeout  time.Duration
}

// WaitForReplicas makes every write of the store return only once n
// replicas acknowledged it, or fail with ErrNotReplicated after timeout.
//
// Redis replicates asynchronously: a primary that dies right after
// answering may take with it writes its replica never got, and the replica
// promoted in its place serves without them. The projector commits a
// batch's Kafka offsets only after Apply returns, so without this a
// failover can lose batches already counted as done, leaving products stale
// until they change again. WAIT ends the same pipeline as the batch's
// scripts, on the same connection, so it covers exactly those writes.
//
// On a Cluster each write goes to the primary of its slot and WAIT would
// reach only one of them: refused there for now.
func (s *Store) WaitForReplicas(n int, timeout time.Duration) error {
	switch {
	case n < 0:
		return fmt.Errorf("waiting for %d replicas: want 0 or more", n)
	case n > 0 && timeout <= 0:
		return fmt.Errorf("waiting for %d replicas: a timeout is needed", n)
	case n > 0 && s.buckets > 0:
		return errors.New("waiting for replicas is not supported on a Redis Cluster yet")
	}
	s.wait = replicaWait{replicas: n, timeout: timeout}
	return nil
}

// queueWait adds WAIT to pipe when the store waits for replicas.
func (s *Store) queueWait(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	if !s.Waits() {
		return nil
	}
	// Pipeliner lacks go-redis's Wait; it is the same command.
	return pipe.Do(ctx, "WAIT", s.wait.replicas, s.wait.timeout.Milliseconds())
}

// checkWait reports ErrNotReplicated when WAIT counted too few replicas.
func (s *Store) checkWait(cmd *redis.Cmd) error {
	if cmd == nil {
		return nil
	}
	n, err := cmd.Int64()
	if err != nil {
		return fmt.Errorf("waiting for replicas: %w", err)
	}
	if int(n) < s.wait.replicas {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, s.wait.replicas, s.wait.timeout)
	}
	return nil
}

// Waits reports whether the store's writes wait for replicas.
func (s *Store) Waits() bool { return s.wait.replicas > 0 }

// ReplicationID is the replication id of the Redis the store writes to
// (INFO replication, master_replid). It changes when a replica is promoted
// in the primary's place and when a primary restarts without its data: the
// moments writes it acknowledged may be gone. On a Cluster it is the ids of
// every master, sorted and joined: a failover of any shard changes it.
func (s *Store) ReplicationID(ctx context.Context) (string, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return replicationID(ctx, s.rdb)
	}
	var (
		mu  sync.Mutex // ForEachMaster runs on the masters concurrently
		ids []string
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		id, err := replicationID(ctx, c)
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return err
	})
	if err != nil {
		return "", err
	}
	slices.Sort(ids)
	return strings.Join(ids, ","), nil
}

func replicationID(ctx context.Context, c redis.Cmdable) (string, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return "", fmt.Errorf("reading the replication id: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_replid:"); ok {
			return v, nil
		}
	}
	return "", errors.New("reading the replication id: INFO replication has no master_replid")
}
