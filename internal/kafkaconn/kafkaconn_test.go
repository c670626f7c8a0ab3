package kafkaconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/internal/tlsconf"
)

func TestValidate(t *testing.T) {
	pwFile := testenv.SecretFile(t, "pw", "p")
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{name: "brokers", cfg: Config{Brokers: []string{"k1:9092", "k2:9092"}}},
		{name: "none", cfg: Config{}, wantErr: []string{"no broker"}},
		{name: "an empty one", cfg: Config{Brokers: []string{"k1:9092", ""}}, wantErr: []string{"broker 2 of 2 is empty"}},
		{name: "scram from a file", cfg: Config{Brokers: []string{"k"}, SASLMechanism: ScramSHA512, SASLUsername: "u", SASLPasswordFile: pwFile}},
		{name: "credentials without a mechanism", cfg: Config{Brokers: []string{"k"}, SASLUsername: "u", SASLPassword: "p"},
			wantErr: []string{"without --kafka-sasl-mechanism"}},
		{name: "plain without a password", cfg: Config{Brokers: []string{"k"}, SASLMechanism: Plain, SASLUsername: "u"},
			wantErr: []string{"needs a username and a password"}},
		{name: "both password forms", cfg: Config{Brokers: []string{"k"}, SASLMechanism: Plain, SASLUsername: "u", SASLPassword: "p", SASLPasswordFile: pwFile},
			wantErr: []string{"not both"}},
		{name: "a missing password file", cfg: Config{Brokers: []string{"k"}, SASLMechanism: ScramSHA256, SASLUsername: "u", SASLPasswordFile: "/nonexistent/pw"},
			wantErr: []string{"reading secret file"}},
		{name: "oauth without a token", cfg: Config{Brokers: []string{"k"}, SASLMechanism: OAuthBearer}, wantErr: []string{"needs a token"}},
		{name: "an unknown mechanism and a CA that is not there", cfg: Config{Brokers: []string{"k"}, SASLMechanism: "GSSAPI",
			TLS: tlsconf.Config{CAFile: "/nonexistent/ca.crt"}}, wantErr: []string{"unknown SASL mechanism", "reading the CA bundle"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not mention %q", err, w)
				}
			}
		})
	}
}

// Every caller appends its own options: one caller's must never show up
// in the next one's. Without TLS and SASL the options are the brokers
// alone.
func TestOptsAreFreshPerCall(t *testing.T) {
	c := Config{Brokers: []string{"k1:9092"}}
	a, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	_ = append(a, nil)
	b, _ := c.Opts()
	if len(b) != 1 || len(a) != 1 {
		t.Fatalf("plaintext options: %d and %d, want the seed brokers only", len(a), len(b))
	}
	if &a[0] == &b[0] {
		t.Fatal("two calls share their backing array")
	}
}

// The start log and a JSON dump of a config that holds Config show
// whether a secret is set, never the secret.
func TestLoggingRedactsSecrets(t *testing.T) {
	c := Config{Brokers: []string{"k"}, SASLMechanism: Plain, SASLUsername: "key", SASLPassword: "s3cret-pass", OAuthToken: "tok-s3cret"}
	j, err := json.Marshal(struct{ Kafka Config }{c})
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(c.LogAttrs()...), string(j), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(out, "s3cret") || !strings.Contains(out, "[redacted]") {
			t.Errorf("%s: want the secrets redacted", out)
		}
	}
}

// cluster is an in-process broker requiring SASL with one user per
// mechanism franz-go and kfake share.
func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(Plain, "plain-user", "plain-pw"),
		kfake.Superuser(ScramSHA256, "scram256-user", "scram256-pw"),
		kfake.Superuser(ScramSHA512, "scram512-user", "scram512-pw")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func check(t *testing.T, c Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Check(ctx)
}

// Each mechanism authenticates with the right password, from a file, and
// a wrong one fails early, naming what to check. (kfake hangs up on a wrong
// password where a real broker answers SASL_AUTHENTICATION_FAILED, which
// Check calls a refusal: the secure end-to-end test checks that one.)
func TestSASLMechanisms(t *testing.T) {
	kc := cluster(t)
	for _, tc := range []struct{ mech, user, pw string }{
		{Plain, "plain-user", "plain-pw"}, {ScramSHA256, "scram256-user", "scram256-pw"}, {ScramSHA512, "scram512-user", "scram512-pw"},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			c := Config{Brokers: kc.ListenAddrs(), SASLMechanism: tc.mech, SASLUsername: tc.user,
				SASLPasswordFile: testenv.SecretFile(t, "pw", tc.pw)}
			if err := check(t, c); err != nil {
				t.Fatalf("the right password: %v", err)
			}
			c.SASLPasswordFile, c.SASLPassword = "", "not-the-password"
			start := time.Now()
			err := check(t, c)
			if err == nil || !strings.Contains(err.Error(), "check --kafka-sasl-username and the password") {
				t.Fatalf("a wrong password: %v, want an error naming the settings to check", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the refusal took %s", took)
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// The password file is read at every authentication: a client whose file
// held a wrong password authenticates on its next connection once the file
// is right, without being built again.
func TestPasswordFileIsReadAtEachAuthentication(t *testing.T) {
	kc := cluster(t)
	file := testenv.SecretFile(t, "pw", "stale")
	c := Config{Brokers: kc.ListenAddrs(), SASLMechanism: ScramSHA256, SASLUsername: "scram256-user", SASLPasswordFile: file}
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err == nil {
		t.Fatal("authenticated with a stale password")
	}
	if err := os.WriteFile(file, []byte("scram256-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
		t.Fatalf("after the file was rotated: %v", err)
	}
}

// OAUTHBEARER sends the token the file holds at each authentication (kfake
// has no OAUTHBEARER: the mechanism's first message is checked instead).
func TestOAuthTokenFileIsReadAtEachAuthentication(t *testing.T) {
	file := testenv.SecretFile(t, "token", "token-one")
	c := Config{Brokers: []string{"k"}, SASLMechanism: OAuthBearer, OAuthTokenFile: file}
	m, err := c.mechanism()
	if err != nil {
		t.Fatal(err)
	}
	first := func() string {
		_, msg, err := m.Authenticate(context.Background(), "k:9092")
		if err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}
	if got := first(); !strings.Contains(got, "auth=Bearer token-one") {
		t.Fatalf("first message %q", got)
	}
	if err := os.WriteFile(file, []byte("token-two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := first(); !strings.Contains(got, "auth=Bearer token-two") {
		t.Fatalf("after rotation the first message is %q", got)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Authenticate(context.Background(), "k:9092"); err == nil || !strings.Contains(err.Error(), "OAUTHBEARER token") {
		t.Fatalf("a token file gone: %v", err)
	}
}

// TLS with the CA verifies the broker; the three ways to get TLS wrong are
// refusals that say what to change.
func TestTLS(t *testing.T) {
	certs := testenv.NewCerts(t)
	tlsKC := cluster(t, kfake.TLS(certs.Server))
	// A plaintext listener (kfake waits for the rest of what it takes for
	// a request where a broker hangs up; this one answers in plain text).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			conn.Close()
		}
	}()
	auth := func(brokers []string, tc tlsconf.Config) Config {
		return Config{Brokers: brokers, TLS: tc, SASLMechanism: ScramSHA512, SASLUsername: "scram512-user", SASLPassword: "scram512-pw"}
	}
	if err := check(t, auth(tlsKC.ListenAddrs(), tlsconf.Config{CAFile: certs.CAFile, MinVersion: "1.2"})); err != nil {
		t.Fatalf("TLS with the CA: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no TLS against TLS", auth(tlsKC.ListenAddrs(), tlsconf.Config{}), "the listener speaks TLS"},
		{"a wrong server name", auth(tlsKC.ListenAddrs(), tlsconf.Config{CAFile: certs.CAFile, ServerName: "wrong.invalid"}), "not for the name dialled"},
		{"an unknown CA", auth(tlsKC.ListenAddrs(), tlsconf.Config{Enabled: true}), "not signed by a CA this client trusts"},
		{"TLS against plaintext", auth([]string{ln.Addr().String()}, tlsconf.Config{CAFile: certs.CAFile}), "does not speak TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := check(t, tc.cfg)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want ErrRefused saying %q", err, tc.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the refusal took %s", took)
			}
		})
	}
}

// A broker that is down is not a refusal: the programs wait for it.
func TestCheckUnreachableIsNotRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := Config{Brokers: []string{"127.0.0.1:1"}}.Check(ctx)
	if err == nil || errors.Is(err, ErrRefused) {
		t.Fatalf("an unreachable broker: %v, want an error that is not ErrRefused", err)
	}
}
