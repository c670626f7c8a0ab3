package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockpipe/stock/internal/stockstore"
)

// Cluster starts a Redis Cluster of three masters without replicas (the
// machine's redis-server, joined with redis-cli --cluster create) on free
// ports in a temporary directory, and returns a client of it as the
// programs make one, and the masters' addresses. The nodes are stopped
// when the test ends. It takes a second or two.
func Cluster(t testing.TB) (redis.UniversalClient, []string) {
	t.Helper()
	addrs := createCluster(t, clusterSpec{
		client: func(addr string) *redis.Client { return redis.NewClient(&redis.Options{Addr: addr}) },
	})
	cfg := stockstore.DefaultClientConfig()
	cfg.Addrs, cfg.Cluster = addrs, true
	rdb := stockstore.NewClient(cfg)
	t.Cleanup(func() { rdb.Close() })
	return rdb, addrs
}

// clusterSpec says how createCluster starts and reaches the nodes.
type clusterSpec struct {
	nodeArgs func(port string) []string      // more redis-server arguments of a node
	cliArgs  []string                        // more redis-cli arguments (TLS)
	cliEnv   []string                        // redis-cli's environment (REDISCLI_AUTH)
	client   func(addr string) *redis.Client // a client of one node, closed after use
}

// createCluster starts three masters on free ports in a temporary
// directory, joins them with redis-cli --cluster create and waits until
// the cluster is ok; it returns their addresses.
func createCluster(t testing.TB, spec clusterSpec) []string {
	t.Helper()
	cli := redisTool(t, "redis-cli")
	dir := t.TempDir()
	var addrs []string
	for _, port := range freePorts(t, 3) {
		args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"}
		if spec.nodeArgs != nil {
			args = append(args, spec.nodeArgs(port)...)
		}
		startNode(t, dir, port, args...)
		addrs = append(addrs, "127.0.0.1:"+port)
	}
	ctx := context.Background()
	wait := func(addr string, ok func(*redis.Client) error) {
		c := spec.client(addr)
		defer c.Close()
		waitClient(t, addr, c, ok)
	}
	for _, a := range addrs {
		wait(a, func(c *redis.Client) error { return c.Ping(ctx).Err() })
	}
	args := append(append(spec.cliArgs[:len(spec.cliArgs):len(spec.cliArgs)], "--cluster", "create"), addrs...)
	cmd := exec.Command(cli, append(args, "--cluster-replicas", "0", "--cluster-yes")...)
	cmd.Env = append(os.Environ(), spec.cliEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("creating the cluster: %v\n%s", err, out)
	}
	for _, a := range addrs {
		wait(a, func(c *redis.Client) error {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = fmt.Errorf("cluster state not ok yet")
			}
			return err
		})
	}
	return addrs
}

// redisTool is the path of one of the machine's Redis programs.
func redisTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (scripts/stack.sh installs it): %v", name, err)
	}
	return p
}

// startNode runs the machine's redis-server on port, without persistence,
// in a folder of its own under dir, with extra arguments; it is stopped when
// the test ends.
func startNode(t testing.TB, dir, port string, extra ...string) *exec.Cmd {
	t.Helper()
	server := redisTool(t, "redis-server")
	nodeDir := filepath.Join(dir, port)
	if err := os.Mkdir(nodeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(nodeDir, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", nodeDir,
		"--save", "", "--appendonly", "no", "--daemonize", "no"}, extra...)
	cmd := exec.Command(server, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server on %s: %v", port, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a test may have stopped it
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
	})
	return cmd
}

// waitNode waits until ok succeeds on the node at addr.
func waitNode(t testing.TB, addr string, ok func(*redis.Client) error) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	waitClient(t, addr, c, ok)
}

// waitClient waits until ok succeeds with c, a client of the node at addr.
func waitClient(t testing.TB, addr string, c *redis.Client, ok func(*redis.Client) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ok(c)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster node %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns n distinct free ports for Cluster nodes. All listeners
// stay open until every port is picked, or the system may hand out one
// port twice; a node's cluster bus (port + 10000) must be free too.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var ports []string
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		if err != nil {
			continue
		}
		defer bus.Close()
		ports = append(ports, fmt.Sprint(port))
	}
	return ports
}
