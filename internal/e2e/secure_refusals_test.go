package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/testenv"
)

// earlyExit bounds how long a program may take to give up on settings a
// service refuses: it must stop at start with the cause, never retry for
// ever nor look like a timeout.
const earlyExit = 30 * time.Second

// runToExit runs a program with exactly env until it exits (within
// earlyExit) and returns its output.
func runToExit(t *testing.T, name string, env []string, args ...string) (string, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), earlyExit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, name), args...)
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s still running after %s:\n%s", name, earlyExit, tail(out, 4000))
	}
	return string(out), time.Since(start), err
}

// replaceEnv is env with each of the variables in set replaced (or
// added), and those in drop removed.
func replaceEnv(env []string, set map[string]string, drop ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; ok {
			continue
		}
		dropped := false
		for _, d := range drop {
			dropped = dropped || name == d
		}
		if !dropped {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// A program given settings the secure services refuse stops at once with
// an error naming the refusal and the setting to look at, and without the
// password it was given.
func TestSecureRefusals(t *testing.T) {
	st := newSecureSetup(t)
	own := st.connectAs(t, testenv.PGOwner)
	st.dropSlot(t, own) // in case a producer got as far as creating it
	const wrong = "not-the-password-4f1c"
	noTLS := func(env []string, prefix string) []string {
		return replaceEnv(env, nil, prefix+"TLS_CA_FILE")
	}
	otherName := func(env []string, prefix string) []string {
		return replaceEnv(env, map[string]string{prefix + "TLS_SERVER_NAME": "wrong.invalid"})
	}
	wrongKafkaPW := func(env []string) []string {
		return replaceEnv(env, map[string]string{"STOCK_KAFKA_SASL_PASSWORD": wrong}, "STOCK_KAFKA_SASL_PASSWORD_FILE")
	}
	producer, projector := st.producerEnv(t), st.projectorEnv(t, "")
	api := st.apiEnv(t, freePort(t))
	for _, tc := range []struct {
		name, program string
		env           []string
		want          []string
	}{
		{"producer: wrong SASL password", "producer", wrongKafkaPW(producer),
			[]string{"kafka refused the client", "authenticating as \"stock-producer\"", "SASL_AUTHENTICATION_FAILED"}},
		{"projector: wrong SASL password", "projector", wrongKafkaPW(projector),
			[]string{"kafka refused the client", "authenticating as \"stock-projector\"", "SASL_AUTHENTICATION_FAILED"}},
		{"producer: no TLS against the TLS listener", "producer", noTLS(producer, "STOCK_KAFKA_"),
			[]string{"kafka refused the client", "the listener speaks TLS"}},
		{"projector: no TLS against the TLS listener", "projector", noTLS(projector, "STOCK_KAFKA_"),
			[]string{"kafka refused the client", "the listener speaks TLS"}},
		{"producer: wrong server name", "producer", otherName(producer, "STOCK_KAFKA_"),
			[]string{"kafka refused the client", "not for the name dialled", "wrong.invalid"}},
		{"projector: wrong server name", "projector", otherName(projector, "STOCK_KAFKA_"),
			[]string{"kafka refused the client", "not for the name dialled", "wrong.invalid"}},
		{"projector rebuild: wrong SASL password", "projector", wrongKafkaPW(projector),
			[]string{"kafka refused the client", "SASL_AUTHENTICATION_FAILED"}},
		{"producer: PostgreSQL without TLS", "producer",
			replaceEnv(producer, map[string]string{"STOCK_PG_URL": strings.Replace(st.s.PostgresURL(t, testenv.PGCDC), "sslmode=verify-full", "sslmode=disable", 1)}),
			[]string{"postgres refused the client", "pg_hba.conf"}},
		{"producer: PostgreSQL wrong password", "producer",
			replaceEnv(producer, map[string]string{"STOCK_PG_URL": strings.Replace(st.s.PostgresURL(t, testenv.PGCDC),
				":"+st.s.Password(t, "pg", testenv.PGCDC)+"@", ":"+wrong+"@", 1)}),
			[]string{"postgres refused the client", "password authentication failed"}},
		{"query API: Redis without TLS", "query-api", noTLS(api, "STOCK_REDIS_"),
			[]string{"redis refused the client", "speaks TLS"}},
		{"query API: Redis wrong server name", "query-api", otherName(api, "STOCK_REDIS_"),
			[]string{"redis refused the client", "not for the name dialled"}},
		{"projector: Redis wrong password", "projector",
			replaceEnv(projector, map[string]string{"STOCK_REDIS_PASSWORD": wrong}, "STOCK_REDIS_PASSWORD_FILE"),
			[]string{"redis refused the client", "authenticating as \"stock-projector\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if strings.Contains(tc.name, "rebuild") {
				args = []string{"rebuild"}
			}
			out, took, err := runToExit(t, tc.program, tc.env, args...)
			if err == nil {
				t.Fatalf("%s exited 0 after %s:\n%s", tc.program, took, tail([]byte(out), 4000))
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q (exit after %s):\n%s", w, took, tail([]byte(out), 4000))
				}
			}
			if strings.Contains(out, wrong) {
				t.Errorf("the output shows the password it was given:\n%s", tail([]byte(out), 4000))
			}
		})
	}
}
