package redisconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/internal/tlsconf"
)

func TestClientConfig(t *testing.T) {
	certs := testenv.NewCerts(t)
	tests := []struct {
		name        string
		cfg         Config
		wantAddrs   []string
		wantCluster bool
		wantMaster  string
		wantTLS     bool
	}{
		{name: "one node", cfg: Config{Addr: "r:6379", Prefix: "p:"}, wantAddrs: []string{"r:6379"}},
		{name: "cluster seeds", cfg: Config{Addr: "r1:7000,r2:7001", Cluster: true, Prefix: "p:"},
			wantAddrs: []string{"r1:7000", "r2:7001"}, wantCluster: true},
		{name: "cluster over TLS", cfg: Config{Addr: "r1:7000,r2:7001", Cluster: true, Prefix: "p:", TLS: tlsconf.Config{CAFile: certs.CAFile}},
			wantAddrs: []string{"r1:7000", "r2:7001"}, wantCluster: true, wantTLS: true},
		{name: "sentinels", cfg: Config{Addr: "s1:26379,s2:26379", Sentinel: "stock", Prefix: "p:"},
			wantAddrs: []string{"s1:26379", "s2:26379"}, wantMaster: "stock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := tt.cfg.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cc.Addrs, tt.wantAddrs) || cc.Cluster != tt.wantCluster || cc.SentinelMaster != tt.wantMaster || (cc.TLS != nil) != tt.wantTLS {
				t.Errorf("addrs %v cluster %v master %q TLS %v, want %v %v %q %v", cc.Addrs, cc.Cluster, cc.SentinelMaster, cc.TLS != nil,
					tt.wantAddrs, tt.wantCluster, tt.wantMaster, tt.wantTLS)
			}
			if err := cc.Validate(); err != nil {
				t.Errorf("valid configuration refused: %v", err)
			}
			if def := stockstore.DefaultClientConfig(); cc.ReadTimeout != def.ReadTimeout {
				t.Errorf("read timeout %s, want stockstore's default %s", cc.ReadTimeout, def.ReadTimeout)
			}
		})
	}
}

// One error names every problem: the address, the prefix, both password
// forms, a CA that is not there.
func TestValidate(t *testing.T) {
	err := Config{Addr: "", Prefix: "a{b", Password: "p", PasswordFile: "/f", TLS: tlsconf.Config{CAFile: "/nonexistent/ca"}}.Validate()
	for _, w := range []string{"empty address", "brace", "not both", "reading the CA bundle"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %q", err, w)
		}
	}
	err = Config{Addr: "r1:7000,r2:7001", Cluster: true, Sentinel: "stock", Prefix: "p:"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "sentinel") {
		t.Errorf("a Cluster with a sentinel master: %v, want an error naming the sentinel", err)
	}
	if err := (Config{Addr: "r:6379", Prefix: stockstore.DefaultPrefix}).Validate(); err != nil {
		t.Errorf("a valid config: %v", err)
	}
}

// The start log never carries the password.
func TestLogAttrsRedactPassword(t *testing.T) {
	c := Config{Addr: "r:6379", Password: "s3cret-pass", Prefix: "p:"}
	for _, got := range []string{fmt.Sprint(c.LogAttrs()), fmt.Sprintf("%v %+v", c, c)} {
		if strings.Contains(got, "s3cret-pass") || !strings.Contains(got, "[redacted]") {
			t.Errorf("%s: want the password redacted", got)
		}
	}
}

// An ACL user's password file is read at every new connection: a wrong
// password is a refusal naming the user, and once the file is right the
// same client connects. On the plaintext stack's Redis, with a user of the
// test's own.
func TestPasswordFileIsReadAtEachConnection(t *testing.T) {
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	defer admin.Close()
	user := testenv.Name(t, "redisconn")
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">right-password", "~*", "+@all").Err(); err != nil {
		t.Skipf("cannot create an ACL user on %s: %v", testenv.RedisAddr(), err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })

	file := testenv.SecretFile(t, "pw", "wrong-password")
	c := Config{Addr: testenv.RedisAddr(), Username: user, PasswordFile: file, Prefix: testenv.Name(t, "redisconn") + ":"}
	store, closeClient, err := c.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient()
	err = c.Check(ctx, store)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), user) {
		t.Fatalf("a wrong password: %v, want ErrRefused naming the user", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("the error shows the password: %v", err)
	}
	if err := os.WriteFile(file, []byte("right-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx, store); err != nil {
		t.Fatalf("after the file was rotated: %v", err)
	}
}

// Against the secure stack's TLS port: the CA and the API's user connect;
// no TLS, a wrong server name and a wrong password are refusals that say
// what to change, early.
func TestSecureStack(t *testing.T) {
	s := testenv.Secure(t)
	pw := s.Password(t, "redis", testenv.RedisAPI)
	good := Config{Addr: s.RedisAddr, Username: testenv.RedisAPI, Password: "", PasswordFile: testenv.SecretFile(t, "pw", pw),
		Prefix: stockstore.DefaultPrefix, TLS: tlsconf.Config{CAFile: s.CAFile, MinVersion: "1.2"}}
	check := func(c Config) (time.Duration, error) {
		store, closeClient, err := c.Open(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer closeClient()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		start := time.Now()
		err = c.Check(ctx, store)
		return time.Since(start), err
	}
	if _, err := check(good); err != nil {
		t.Fatalf("TLS as %s: %v", testenv.RedisAPI, err)
	}
	noTLS, wrongName, wrongPW := good, good, good
	noTLS.TLS = tlsconf.Config{}
	wrongName.TLS.ServerName = "wrong.invalid"
	wrongPW.PasswordFile, wrongPW.Password = "", "not-the-password"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no TLS", noTLS, "speaks TLS"},
		{"wrong server name", wrongName, "not for the name dialled"},
		{"wrong password", wrongPW, "authenticating as"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			took, err := check(tc.cfg)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want ErrRefused saying %q", err, tc.want)
			}
			if took > 5*time.Second {
				t.Errorf("the refusal took %s", took)
			}
		})
	}
}
