package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/internal/testenv"
)

func TestParseConfig(t *testing.T) {
	tests := []testenv.ConfigCase[*config]{
		{Name: "defaults", Check: func(c *config) bool {
			return c.Addr == "127.0.0.1:8080" && c.Redis.Addr == "127.0.0.1:6379" && c.Redis.Prefix == "stock:" && c.MaxBodyBytes == 256<<10
		}},
		{Name: "environment fallback", Env: map[string]string{"STOCK_API_ADDR": "127.0.0.1:9999", "STOCK_REDIS_ADDR": "redis:6379"},
			Check: func(c *config) bool { return c.Addr == "127.0.0.1:9999" && c.Redis.Addr == "redis:6379" }},
		{Name: "flag beats environment", Args: []string{"--addr", "127.0.0.1:7000"}, Env: map[string]string{"STOCK_API_ADDR": "127.0.0.1:9999"},
			Check: func(c *config) bool { return c.Addr == "127.0.0.1:7000" }},
		{Name: "every problem reported", Args: []string{"--redis-prefix", "{x}", "--max-body-bytes", "10", "--redis-timeout", "0s", "--slow-request", "0s", "--access-log-max-rate=-1"},
			WantErr: []string{"brace", "max body bytes", "redis timeout", "slow request", "access log max rate"}},
		{Name: "access log defaults", Check: func(c *config) bool {
			return c.AccessLog == "errors" && c.SlowRequest == 100*time.Millisecond && c.accessLogMaxRate() == 100 && c.PprofAddr == ""
		}},
		{Name: "access log from the environment", Env: map[string]string{"STOCK_API_ACCESS_LOG": "all", "STOCK_API_ACCESS_LOG_MAX_RATE": "0"},
			Check: func(c *config) bool { return c.AccessLog == "all" && c.accessLogMaxRate() < 0 }},
		{Name: "unknown access log mode", Args: []string{"--access-log", "verbose"}, WantErr: []string{"access-log"}},
	}
	testenv.RunConfigCases(t, tests, parse)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// --help prints every flag with its variable and default (those of the
// shared Redis group included), and run ends without an error and without
// serving.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, testenv.Getenv(nil), &out); err != nil {
		t.Fatalf("run --help: %v", err)
	}
	for _, w := range []string{"Usage: query-api", `--addr="127.0.0.1:8080"`, `--redis-addr="127.0.0.1:6379"`, "$STOCK_REDIS_ADDR",
		"--redis-cluster", `--redis-prefix="stock:"`, "$STOCK_REDIS_PASSWORD", "--redis-timeout=500ms"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("help lacks %q:\n%s", w, out.String())
		}
	}
}

func TestRunServesAndStops(t *testing.T) {
	rdb := storetest.Client(t)
	prefix := storetest.Prefix(t, rdb)
	st, err := stockstore.New(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), []stockstore.Snapshot{{
		ProductID: "SKU-1", Position: position.Position{LSN: 1, Index: 1}, OnHand: 7, Status: "IN_STOCK",
	}}); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", addr, "--redis-prefix", prefix},
			testenv.Getenv(map[string]string{"STOCK_REDIS_ADDR": testenv.RedisAddr()}), &logs)
	}()

	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never answered: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := http.Get(base + "/v1/stock/SKU-1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"on_hand":7`) {
		t.Errorf("GET = %d %s", res.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(logs.String(), `"msg":"starting query-api"`) {
		t.Errorf("no JSON start log with the config:\n%s", logs.String())
	}
}

// A request in flight when the program is told to stop is answered before
// run returns, while new connections are refused.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	rdb := storetest.Client(t)
	prefix := storetest.Prefix(t, rdb)
	st, err := stockstore.New(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(context.Background(), []stockstore.Snapshot{{
		ProductID: "SKU-1", Position: position.Position{LSN: 1, Index: 1}, OnHand: 7, Status: "IN_STOCK",
	}}); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", addr, "--redis-prefix", prefix, "--shutdown-timeout", "5s"},
			testenv.Getenv(map[string]string{"STOCK_REDIS_ADDR": testenv.RedisAddr()}), &logs)
	}()
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never listened: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()

	// Half a request: the handler is running, reading the body. The server
	// answers "100 Continue" when the handler starts reading it.
	body := `{"product_ids":["SKU-1"]}`
	head := "POST /v1/stock/bulk HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n" +
		"Expect: 100-continue\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+body[:10]); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != http.StatusContinue {
		t.Fatalf("the handler never read the body: %v %v\n%s", res, err, logs.String())
	}
	conn.SetReadDeadline(time.Time{})
	cancel()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Error("new connections still accepted 5s into draining")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("run returned with a request in flight: %v", err)
	default:
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the in-flight answer: %v", err)
	}
	got, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(got), `"on_hand":7`) {
		t.Errorf("in-flight request answered %d %s", res.StatusCode, got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the last request")
	}
}

// --pprof-addr serves Go's profiles on their own address, never on the
// API's.
func TestPprofOnItsOwnAddress(t *testing.T) {
	rdb := storetest.Client(t)
	prefix := storetest.Prefix(t, rdb)
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", addr, "--redis-prefix", prefix, "--pprof-addr", pprofAddr},
			testenv.Getenv(map[string]string{"STOCK_REDIS_ADDR": testenv.RedisAddr()}), &logs)
	}()
	get := func(url string) (int, string) {
		for deadline := time.Now().Add(10 * time.Second); ; {
			res, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res.StatusCode, string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\n%s", url, err, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if code, body := get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof address: %d %.200s", code, body)
	}
	if code, _ := get("http://" + addr + "/debug/pprof/goroutine?debug=1"); code != 404 {
		t.Errorf("the API's address serves pprof: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// parse is parseConfig as the configuration table calls it.
func parse(args []string, getenv func(string) string) (*config, error) {
	return parseConfig(args, getenv, io.Discard)
}
