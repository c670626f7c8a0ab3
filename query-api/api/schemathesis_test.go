package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockpipe/stock/internal/position"
	"github.com/stockpipe/stock/internal/stockstore"
	"github.com/stockpipe/stock/internal/stockstore/storetest"
	"github.com/stockpipe/stock/query-api/api"
)

// schemathesisBin finds the schemathesis that scripts/schemathesis.sh
// installs (or $STOCK_SCHEMATHESIS). Missing, the test fails in CI, where
// make test installs it, and is skipped elsewhere with how to get it.
func schemathesisBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("STOCK_SCHEMATHESIS")
	if bin == "" {
		bin = filepath.Join("..", "..", ".local", "venv", "bin", "schemathesis")
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("schemathesis not found at %s: run scripts/schemathesis.sh install (make test does)", bin)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestSchemathesis runs schemathesis, as a new user of the API would, with
// every check against the served /openapi.json: the API serves a real
// Redis (unique prefix) holding products, deletions and watermarks of an
// active generation, ready, with the public view and an API key configured.
// Any mismatch between the document and the server fails it.
func TestSchemathesis(t *testing.T) {
	bin := schemathesisBin(t)
	ctx := context.Background()
	st, _ := storetest.New(t)
	if _, _, err := st.InitGeneration(ctx); err != nil {
		t.Fatal(err)
	}
	var snaps []stockstore.Snapshot
	for i := range 40 {
		p := position.Position{LSN: 0x1000 + uint64(i), Index: 1}
		if i%2 == 0 {
			snaps = append(snaps, twoWarehouses(fmt.Sprintf("SKU-%d", i), p))
		} else {
			snaps = append(snaps, snapshot(fmt.Sprintf("SKU-%d", i), int64(i), p))
		}
	}
	snaps = append(snaps, stockstore.Snapshot{ProductID: "SKU-39", Position: position.Position{LSN: 0x2000, Index: 1}, Deleted: true})
	mark := stockstore.Watermark{Topic: api.DefaultWatermarkTopic, Partition: 0, Offset: 41,
		Position: position.Position{LSN: 0x2000, Index: 1}, CommitTime: time.Now(), AppliedAt: time.Now(), CaughtUp: true}
	if _, err := st.Apply(ctx, snaps, mark); err != nil {
		t.Fatal(err)
	}
	// The run takes well under a minute; the key goes with the prefix.
	if err := st.Heartbeat(ctx, api.DefaultWatermarkTopic, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(api.NewServer(api.Deps{Store: st, Registerer: reg, Gatherer: reg,
		MaxLag: time.Minute, PublicCap: 50, APIKeys: []string{apiKey}}))
	t.Cleanup(srv.Close)

	config, err := filepath.Abs(filepath.Join("testdata", "schemathesis.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file", config, "--no-color", "run", srv.URL+"/openapi.json",
		"--checks", "all", "--output-sanitize", "false", "--generation-database", "none")
	// It keeps a cache in its working directory: not in the source tree.
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "SCHEMATHESIS_HOOKS=")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("schemathesis took %s:\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("schemathesis found mismatches between /openapi.json and the server (%v); output above", err)
	}
}
