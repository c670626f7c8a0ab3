package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// ReplicatedStartHint says how to start the replicated profile.
const ReplicatedStartHint = "start it with STACK_REPLICATED=1 scripts/stack.sh up"

// ReplicatedKafka is the replicated profile's Kafka cluster
// (STACK_REPLICATED=1 scripts/stack.sh; scripts/replicated/stack-replicated.sh):
// three KRaft nodes, node N listening on 29092+100*(N-1) unless
// STOCK_REPLICATED_KAFKA_BROKERS says otherwise (node N is the Nth address).
type ReplicatedKafka struct {
	Brokers []string
	root    string // the repository, for scripts/stack.sh
}

// Replicated returns the cluster after checking that every node answers.
// When it is not up the test is skipped on a developer's machine and fails
// in CI, where make test starts it.
func Replicated(t testing.TB) *ReplicatedKafka {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	r := &ReplicatedKafka{
		Brokers: strings.Split(getenv("STOCK_REPLICATED_KAFKA_BROKERS", "127.0.0.1:29092,127.0.0.1:29192,127.0.0.1:29292"), ","),
		root:    filepath.Join(filepath.Dir(file), "..", ".."),
	}
	if problems := unanswered(r.Brokers...); len(problems) > 0 {
		notUp(t, fmt.Sprintf("the replicated Kafka cluster is not up (%s): %s", ReplicatedStartHint, strings.Join(problems, "; ")))
	}
	return r
}

// Kill SIGKILLs node id (1 to 3), as a crash would: no controlled shutdown.
func (r *ReplicatedKafka) Kill(t testing.TB, id int32) { r.stack(t, "kill", id) }

// Start starts node id again and waits until it serves.
func (r *ReplicatedKafka) Start(t testing.TB, id int32) { r.stack(t, "up", id) }

// Stop stops node id with a controlled shutdown (SIGTERM), as a rolling
// restart does.
func (r *ReplicatedKafka) Stop(t testing.TB, id int32) { r.stack(t, "down", id) }

func (r *ReplicatedKafka) stack(t testing.TB, cmd string, id int32) {
	t.Helper()
	c := exec.Command("bash", filepath.Join(r.root, "scripts", "stack.sh"), cmd, fmt.Sprintf("kafka-%d", id))
	c.Env = append(os.Environ(), "STACK_REPLICATED=1")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s kafka-%d: %v\n%s", cmd, id, err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
