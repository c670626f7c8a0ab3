package storetest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterTLS starts a Redis Cluster of three masters that speaks TLS only,
// to clients and between its nodes (tls-cluster), with the server
// certificate and key given (signed by the CA in caFile), and the default
// user's password adminPassword; it returns the masters' addresses. ACL
// users are per node: the test adds its own to each (Admin). Clients are
// asked for no certificate: they prove who they are with a password.
func ClusterTLS(t testing.TB, caFile, certFile, keyFile, adminPassword string) []string {
	t.Helper()
	return createCluster(t, clusterSpec{
		nodeArgs: func(port string) []string {
			return []string{"--port", "0", "--tls-port", port, "--tls-cluster", "yes",
				"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
				"--tls-auth-clients", "no", "--requirepass", adminPassword}
		},
		cliArgs: []string{"--tls", "--cacert", caFile},
		cliEnv:  []string{"REDISCLI_AUTH=" + adminPassword},
		client:  func(addr string) *redis.Client { return adminClient(t, addr, caFile, adminPassword) },
	})
}

// Admin is a client of one node of a TLS cluster as its default user,
// closed when the test ends.
func Admin(t testing.TB, addr, caFile, adminPassword string) *redis.Client {
	t.Helper()
	c := adminClient(t, addr, caFile, adminPassword)
	t.Cleanup(func() { c.Close() })
	return c
}

func adminClient(t testing.TB, addr, caFile, adminPassword string) *redis.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return redis.NewClient(&redis.Options{Addr: addr, Password: adminPassword,
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
}

// NodeTLS starts one Redis that speaks TLS only and asks every client for
// a certificate of the CA in caFile (tls-auth-clients yes); its default
// user has no password. It returns the node's address.
func NodeTLS(t testing.TB, caFile, certFile, keyFile string) string {
	t.Helper()
	port := freePorts(t, 1)[0]
	startNode(t, t.TempDir(), port, "--port", "0", "--tls-port", port,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "yes")
	addr := "127.0.0.1:" + port
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis with TLS on %s: %v", addr, err)
		}
	}
}
