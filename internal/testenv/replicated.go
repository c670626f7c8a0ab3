package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplicatedStartHint says how to start the replicated profile.
const ReplicatedStartHint = "start it with STACK_REPLICATED=1 scripts/stack.sh up"

// ReplicatedStack is the replicated profile of the local stack
// (STACK_REPLICATED=1 scripts/stack.sh; scripts/replicated/stack-replicated.sh):
// three KRaft nodes, node N listening on 29092+100*(N-1) unless
// STOCK_REPLICATED_KAFKA_BROKERS says otherwise (node N is the Nth address);
// and a Redis primary and replica (RedisNodes, 26379 and 26380) under a Sentinel (26381)
// that knows the primary as Master.
type ReplicatedStack struct {
	Brokers    []string
	RedisNodes []string // node N is the Nth (redis-N)
	Sentinels  []string
	Master     string
	root       string // the repository, for scripts/stack.sh
}

// Replicated returns the cluster after checking that every node answers.
// When it is not up the test is skipped on a developer's machine and fails
// in CI, where make test starts it.
func Replicated(t testing.TB) *ReplicatedStack {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	r := &ReplicatedStack{
		Brokers:    strings.Split(getenv("STOCK_REPLICATED_KAFKA_BROKERS", "127.0.0.1:29092,127.0.0.1:29192,127.0.0.1:29292"), ","),
		RedisNodes: strings.Split(getenv("STOCK_REPLICATED_REDIS_NODES", "127.0.0.1:26379,127.0.0.1:26380"), ","),
		Sentinels:  strings.Split(getenv("STOCK_REPLICATED_REDIS_SENTINELS", "127.0.0.1:26381"), ","),
		Master:     getenv("STOCK_REPLICATED_REDIS_MASTER", "stock"),
		root:       filepath.Join(filepath.Dir(file), "..", ".."),
	}
	if problems := unanswered(append(r.Brokers, r.Sentinels...)...); len(problems) > 0 {
		notUp(t, fmt.Sprintf("the replicated stack is not up (%s): %s", ReplicatedStartHint, strings.Join(problems, "; ")))
	}
	return r
}

// KafkaNode is the service name of broker id (1 to 3).
func KafkaNode(id int32) string { return fmt.Sprintf("kafka-%d", id) }

// Kill SIGKILLs service (kafka-N, redis-N, sentinel), as a crash would: no
// controlled shutdown.
func (r *ReplicatedStack) Kill(t testing.TB, service string) { r.stack(t, "kill", service) }

// Start starts service again and waits until it serves.
func (r *ReplicatedStack) Start(t testing.TB, service string) { r.stack(t, "up", service) }

// Stop stops service cleanly (SIGTERM: a broker's controlled shutdown), as
// a rolling restart does.
func (r *ReplicatedStack) Stop(t testing.TB, service string) { r.stack(t, "down", service) }

func (r *ReplicatedStack) stack(t testing.TB, cmd, service string) {
	t.Helper()
	c := exec.Command("bash", filepath.Join(r.root, "scripts", "stack.sh"), cmd, service)
	c.Env = append(os.Environ(), "STACK_REPLICATED=1")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s %s: %v\n%s", cmd, service, err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

// RedisPrimary is the service name (redis-1, redis-2) of the node the
// Sentinel calls the primary now, and its address.
func (r *ReplicatedStack) RedisPrimary(t testing.TB) (service, addr string) {
	t.Helper()
	s := redis.NewSentinelClient(&redis.Options{Addr: r.Sentinels[0]})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hp, err := s.GetMasterAddrByName(ctx, r.Master).Result()
	if err != nil || len(hp) != 2 {
		t.Fatalf("asking the sentinel for the primary %s: %v", r.Master, err)
	}
	addr = net.JoinHostPort(hp[0], hp[1])
	i := slices.Index(r.RedisNodes, addr)
	if i < 0 {
		t.Fatalf("the sentinel's primary %s is none of the nodes %v", addr, r.RedisNodes)
	}
	return fmt.Sprintf("redis-%d", i+1), addr
}
