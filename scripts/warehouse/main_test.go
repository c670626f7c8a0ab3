package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// TestSeedThenSimulate drives the program as `make run` does, on a corner of
// the demo data (the first 50 products in 2 warehouses, which the demo seed
// creates anyway), and checks the load is real writes, not failures.
func TestSeedThenSimulate(t *testing.T) {
	getenv := func(k string) string {
		if k == "STOCK_PG_URL" {
			return testenv.PostgresURL()
		}
		return ""
	}
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"seed", "--products", "50", "--warehouses", "2"}, getenv, &out, &out); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	out.Reset()
	args := []string{"simulate", "--rate", "200", "--duration", "1500ms", "--products", "50", "--warehouses", "2"}
	if err := run(ctx, args, getenv, &out, &out); err != nil {
		t.Fatalf("simulate: %v\n%s", err, out.String())
	}

	var final struct {
		Msg    string `json:"msg"`
		Calls  int    `json:"calls"`
		ByKind map[string]struct {
			OK, Refused, Failed int
		} `json:"by_kind"`
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "simulation stopped" {
			if err := json.Unmarshal(sc.Bytes(), &final); err != nil {
				t.Fatal(err)
			}
		}
	}
	if final.Msg == "" {
		t.Fatalf("no final summary logged:\n%s", out.String())
	}
	if final.Calls < 200 {
		t.Errorf("made %d calls in 1.5s at 200/s, want at least 200", final.Calls)
	}
	for kind, c := range final.ByKind {
		if c.Failed != 0 {
			t.Errorf("%s: %d failed calls (%s)", kind, c.Failed, out.String())
		}
	}
	if final.ByKind["reserve"].OK == 0 || final.ByKind["receive"].OK == 0 {
		t.Errorf("no successful reserve or receive: %+v", final.ByKind)
	}
}

func TestRunRejectsBadFlagsBeforeConnecting(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown command", []string{"dance"}},
		{"non-positive rate", []string{"simulate", "--rate", "0"}},
		{"one warehouse cannot transfer", []string{"simulate", "--warehouses", "1"}},
		{"too many products for SKU-%06d", []string{"seed", "--products", "1000000"}},
		{"sweep limit of zero", []string{"sweep", "--limit", "0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			// An unreachable URL: validation must fail before any dial.
			getenv := func(k string) string {
				if k == "STOCK_PG_URL" {
					return "postgres://nobody@127.0.0.1:1/none"
				}
				return ""
			}
			err := run(context.Background(), tc.args, getenv, &out, &out)
			if err == nil {
				t.Fatalf("run(%v) succeeded, want an error", tc.args)
			}
			if bytes.Contains([]byte(err.Error()), []byte("127.0.0.1:1")) {
				t.Errorf("run(%v) dialled before validating: %v", tc.args, err)
			}
		})
	}
}

// The sweeper as make run starts it: a reservation past its expiry is
// expired without any simulator, /metrics says so, and a signal (the
// context) stops it cleanly. On a database of the test's own, so that a
// sweeper of make run cannot take the reservation first.
func TestSweepExpiresWithoutTheSimulator(t *testing.T) {
	ctx := context.Background()
	url := testenv.Database(t, "test_sweep")
	getenv := func(k string) string {
		if k == "STOCK_PG_URL" {
			return url
		}
		return ""
	}
	var out testenv.SyncBuffer
	if err := run(ctx, []string{"seed", "--products", "2", "--warehouses", "2"}, getenv, &out, &out); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	db, err := inventorydb.OpenPool(ctx, inventorydb.PoolConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := inventorydb.Reserve(ctx, db, inventorydb.ReserveRequest{ReservationID: "abandoned",
		ProductID: "SKU-000001", WarehouseID: "WH-01", Quantity: 3, TTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(sctx, []string{"sweep", "--every", "100ms", "--metrics-addr", addr}, getenv, &out, &out)
	}()
	want := []string{"stock_sweeper_reservations_expired_total 1", "stock_sweeper_oldest_overdue_seconds 0",
		"stock_sweeper_overdue_reservations 0", "stock_sweeper_errors_total 0", "stock_sweeper_last_success_timestamp_seconds 1"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		body := scrape(addr)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q:\n%s\nlogs:\n%s", missing, body, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r, err := inventorydb.LoadReservation(ctx, db, "abandoned"); err != nil || r.Status != inventorydb.StatusExpired {
		t.Errorf("reservation %+v, %v; want expired", r, err)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sweep: %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sweep did not stop")
	}
}

func scrape(addr string) string {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
