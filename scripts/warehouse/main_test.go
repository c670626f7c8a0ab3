package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"

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
