package redisconn

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/secret"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/internal/tlsconf"
)

// aclRules reads the programs' ACL rule sets from
// scripts/secure/redis-acl.rules ("USER: RULES" lines), each split into the
// arguments of ACL SETUSER (a selector in parentheses is one argument).
func aclRules(t *testing.T) map[string][]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "..", "scripts", "secure", "redis-acl.rules"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		user, rules, ok := strings.Cut(sc.Text(), ": ")
		if !ok || strings.HasPrefix(user, "#") {
			continue
		}
		var args []string
		for rules != "" {
			rules = strings.TrimLeft(rules, " ")
			end := strings.IndexByte(rules, ' ')
			if strings.HasPrefix(rules, "(") {
				end = strings.IndexByte(rules, ')') + 1
			}
			if end <= 0 {
				end = len(rules)
			}
			args = append(args, rules[:end])
			rules = rules[end:]
		}
		out[user] = args
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The projector's and the API's users, with the rule sets the secure
// profile gives them, on a Redis Cluster that speaks TLS only: the
// projector writes the Cluster layout through the client the programs
// build from their flags (--redis-cluster, --redis-username,
// --redis-password, --redis-tls-ca-file), the API reads it and may write
// nothing, and a client without a password or without TLS gets nothing.
func TestClusterOverTLSWithACLUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	ctx := context.Background()
	// What go-redis says of a command the rules refuse (the Cluster client
	// reads the command table, say) goes to this log.
	var clientLog testenv.SyncBuffer
	stockstore.SetLogger(slog.New(slog.NewTextHandler(&clientLog, nil)))
	t.Cleanup(func() { stockstore.SetLogger(slog.Default()) })
	certs := testenv.NewCerts(t)
	adminPW := "admin-" + testenv.Name(t, "pw")
	addrs := storetest.ClusterTLS(t, certs.CAFile, certs.ServerCert, certs.ServerKey, adminPW)
	rules := aclRules(t)
	passwords := map[string]string{}
	for _, user := range []string{"stock-projector", "stock-api"} {
		if rules[user] == nil {
			t.Fatalf("no rules for %s in redis-acl.rules", user)
		}
		passwords[user] = "pw-" + testenv.Name(t, user)
		for _, a := range addrs { // ACL users are per node
			args := append([]any{"ACL", "SETUSER", user, "on", ">" + passwords[user]}, toAny(rules[user])...)
			if err := storetest.Admin(t, a, certs.CAFile, adminPW).Do(ctx, args...).Err(); err != nil {
				t.Fatalf("ACL SETUSER %s on %s: %v", user, a, err)
			}
		}
	}
	prefix := "stock:" + testenv.Name(t, "tlscluster") + ":"
	open := func(user, pw string, tls bool) *stockstore.Store {
		c := Config{Addr: strings.Join(addrs, ","), Cluster: true, Username: user, Password: secret.Value(pw), Prefix: prefix}
		if tls {
			c.TLS = tlsconf.Config{CAFile: certs.CAFile}
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		st, closeClient, err := c.Open(func(cc *stockstore.ClientConfig) { cc.ReadTimeout, cc.DialTimeout = 3*time.Second, 3*time.Second })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = closeClient() })
		return st
	}
	writer := open("stock-projector", passwords["stock-projector"], true)
	reader := open("stock-api", passwords["stock-api"], true)

	if err := writer.LoadScripts(ctx); err != nil {
		t.Fatalf("loading scripts as the projector: %v", err)
	}
	if _, _, err := writer.InitGeneration(ctx); err != nil {
		t.Fatalf("first generation as the projector: %v", err)
	}
	var snaps []stockstore.Snapshot
	for i := range 60 { // over every master's slots
		id := fmt.Sprintf("SKU-%03d", i)
		snaps = append(snaps, stockstore.Snapshot{ProductID: id, Position: position.Position{LSN: 100, Index: uint32(i + 1)},
			OnHand: int64(i), Available: int64(i), Status: "IN_STOCK", CommitTime: time.Now().UTC(),
			Warehouses: []stockstore.Warehouse{{WarehouseID: "WH-01", OnHand: int64(i), Available: int64(i), Status: "IN_STOCK", LowStockThreshold: 5}}})
	}
	if _, err := writer.Apply(ctx, snaps); err != nil {
		t.Fatalf("apply as the projector: %v", err)
	}
	// The failover check reads every master's replication id.
	if id, err := writer.ReplicationID(ctx); err != nil || strings.Count(id, ",") != len(addrs)-1 {
		t.Errorf("the cluster's replication id as the projector: %q, %v; want one id per master", id, err)
	}
	for _, s := range snaps {
		p, err := reader.Get(ctx, s.ProductID)
		if err != nil || p.OnHand != s.OnHand {
			t.Fatalf("%s as the API: %+v, %v; want on_hand %d", s.ProductID, p, err, s.OnHand)
		}
	}
	if strings.Contains(clientLog.String(), "NOPERM") {
		t.Errorf("the clients were refused a command of their own:\n%s", clientLog.String())
	}
	if _, err := reader.Apply(ctx, snaps[:1]); err == nil || !strings.Contains(err.Error(), "NOPERM") && !strings.Contains(err.Error(), "can't run") {
		t.Errorf("apply as the API: %v, want refused by its ACL rules", err)
	}
	for _, tc := range []struct {
		name string
		st   *stockstore.Store
		want string
	}{
		{"no password", open("stock-api", "", true), "NOAUTH"},
		// The node reads the first command as a TLS handshake and hangs up.
		{"without TLS", open("stock-api", passwords["stock-api"], false), "EOF|connection reset"},
	} {
		_, err := tc.st.Get(ctx, "SKU-001")
		if err == nil || !containsOne(err.Error(), tc.want) {
			t.Errorf("%s: %v, want refused (%s)", tc.name, err, tc.want)
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// A Redis that asks every client for a certificate (mutual TLS): the
// client the programs build from --redis-tls-ca-file, --redis-tls-cert-file
// and --redis-tls-key-file is let in; without the certificate it is not.
func TestMutualTLS(t *testing.T) {
	ctx := context.Background()
	certs := testenv.NewCerts(t)
	addr := storetest.NodeTLS(t, certs.CAFile, certs.ServerCert, certs.ServerKey)
	ping := func(tc tlsconf.Config) error {
		c := Config{Addr: addr, Prefix: "stock:", TLS: tc}
		cc, err := c.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		rdb := stockstore.NewClient(cc)
		defer rdb.Close()
		return rdb.Ping(ctx).Err()
	}
	if err := ping(tlsconf.Config{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}); err != nil {
		t.Errorf("with the client certificate: %v", err)
	}
	if err := ping(tlsconf.Config{CAFile: certs.CAFile}); err == nil || !containsOne(err.Error(), "certificate|EOF|connection reset") {
		t.Errorf("without a client certificate: %v, want refused for it", err)
	}
}

// containsOne reports whether s contains one of the |-separated words.
func containsOne(s, words string) bool {
	for _, w := range strings.Split(words, "|") {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
