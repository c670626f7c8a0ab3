// Package securetest checks the secure profile of the local stack
// (STACK_SECURE=1 scripts/stack.sh up; docs/security.md) from outside, the
// way an attacker or a misconfigured client would meet it: each principal may
// do what its program does and nothing else, and every refusal comes early
// and names its cause. Where they can, the cases use clients that are not
// ours (psql, redis-cli, kcat, the Kafka distribution's Java tools) beside
// plain pgx, franz-go and go-redis. It has no code outside tests and imports
// no program: the stack is the thing under test.
package securetest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// early bounds how long a refusal may take: a wrong password or a missing
// right must fail at once, never look like a timeout.
const early = 15 * time.Second

// tool returns the path of a program the test runs. Missing, it skips the
// test on a developer's machine and fails it in CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed: run scripts/tools.sh", name)
		}
		t.Skipf("%s not installed: run scripts/tools.sh", name)
	}
	return p
}

// result is what a client program did.
type result struct {
	out  string // stdout and stderr
	err  error
	took time.Duration
}

// run runs a client program with extra environment (passwords go there or in
// files, never on the command line) and a deadline of 2*early.
func run(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	return runInput(t, "", env, name, args...)
}

// runInput is run with stdin.
func runInput(t *testing.T, stdin string, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*early)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	return result{out: out.String(), err: err, took: time.Since(start)}
}

// refused checks that an attempt failed early, with an answer that contains
// every one of want (case-insensitive; "a|b" is either).
func refused(t *testing.T, what string, err error, answer string, took time.Duration, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want refused (%s)", what, answer)
		return
	}
	if took > early {
		t.Errorf("%s: refused after %s, want within %s (%v)", what, took.Round(time.Millisecond), early, err)
	}
	text := strings.ToLower(answer + " " + err.Error())
	for _, w := range want {
		if !containsAny(text, w) {
			t.Errorf("%s: answer does not say %q:\n%v\n%s", what, w, err, answer)
		}
	}
}

func containsAny(text, alternatives string) bool {
	for _, a := range strings.Split(alternatives, "|") {
		if strings.Contains(text, strings.ToLower(a)) {
			return true
		}
	}
	return false
}

// refusedRun is refused for a client program.
func refusedRun(t *testing.T, what string, r result, want ...string) {
	t.Helper()
	err := r.err
	if err == nil {
		err = errors.New("exit status 0")
		// Some tools report a refusal and still exit 0; the answer decides.
		for _, w := range want {
			if !containsAny(strings.ToLower(r.out), w) {
				t.Errorf("%s: succeeded, want refused:\n%s", what, r.out)
				return
			}
		}
	}
	refused(t, what, err, r.out, r.took, want...)
}

// secretFile writes content to a file of the test's own, mode 600: client
// configurations that hold a password.
func secretFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connect opens a pgx connection as role, closed when the test ends.
func connect(t *testing.T, s *testenv.SecureStack, role string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), early)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.PostgresURL(t, role))
	if err != nil {
		t.Fatalf("connecting as %s: %v", role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// owner connects as the schema's owner and applies the migrations, which
// grant the roles their rights (the stack created the roles first).
func owner(t *testing.T, s *testenv.SecureStack) *pgx.Conn {
	t.Helper()
	conn := connect(t, s, testenv.PGOwner)
	if err := inventorydb.Migrate(context.Background(), conn); err != nil {
		t.Fatalf("migrating as the owner: %v", err)
	}
	return conn
}
