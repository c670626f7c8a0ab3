package cdc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stockpipe/stock/producer/sink"
	"github.com/stockpipe/stock/producer/statestore"
	"github.com/stockpipe/stock/schemas"
)

func TestStateVerdict(t *testing.T) {
	const owner = "kafka cluster A, checkpoint topic c, levels topic l, slot s"
	at := time.Date(2026, 12, 5, 1, 0, 0, 123456789, time.UTC)
	cp := sink.Checkpoint{CommitLSN: 500, EndLSN: 510, SnapshotDone: true, SnapshotLSN: 100, WrittenAt: at}
	clean := func(c sink.Checkpoint) statestore.Meta {
		return statestore.Meta{Format: statestore.Format, Owner: owner, Clean: true, Mark: checkpointMark(c)}
	}
	with := func(f func(*sink.Checkpoint)) sink.Checkpoint { c := cp; f(&c); return c }
	for _, tc := range []struct {
		name string
		m    statestore.Meta
		ok   bool
		want string
	}{
		{"matches", clean(cp), true, ""},
		{"matches after a JSON round trip of the time", clean(with(func(c *sink.Checkpoint) { c.WrittenAt = at.In(time.FixedZone("x", 3600)) })), true, ""},
		{"missing", statestore.Meta{}, false, "missing"},
		{"other format", func() statestore.Meta { m := clean(cp); m.Format++; return m }(), true, "format"},
		{"another deployment's", func() statestore.Meta { m := clean(cp); m.Owner += "x"; return m }(), true, "other_owner"},
		{"written ahead of kafka", func() statestore.Meta { m := clean(cp); m.Clean = false; return m }(), true, "unclean"},
		{"behind: an older transaction", clean(with(func(c *sink.Checkpoint) { c.CommitLSN = 400 })), true, "behind"},
		{"behind: an older snapshot", clean(with(func(c *sink.Checkpoint) { c.SnapshotLSN, c.CommitLSN = 50, 900 })), true, "behind"},
		{"behind: same LSNs, written before", clean(with(func(c *sink.Checkpoint) { c.WrittenAt = at.Add(-time.Nanosecond) })), true, "behind"},
		{"ahead: a later transaction", clean(with(func(c *sink.Checkpoint) { c.CommitLSN = 600 })), true, "ahead"},
		{"ahead: same LSNs, written after", clean(with(func(c *sink.Checkpoint) { c.WrittenAt = at.Add(time.Second) })), true, "ahead"},
		{"corrupt mark", func() statestore.Meta { m := clean(cp); m.Mark = "{"; return m }(), true, "corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stateVerdict(tc.m, tc.ok, owner, cp, true); got != tc.want {
				t.Fatalf("verdict %q, want %q", got, tc.want)
			}
		})
	}
	if got := stateVerdict(clean(cp), true, owner, sink.Checkpoint{}, false); got != "no_checkpoint" {
		t.Fatalf("without a checkpoint in Kafka: %q, want no_checkpoint", got)
	}
}

func TestDefaultStateDir(t *testing.T) {
	for id, want := range map[string]string{
		"stock-producer-stock_cdc":             "stock-producer-stock_cdc",
		"stock-producer-s-x.stock.producer.ch": "stock-producer-s-x.stock.producer.ch",
		"../../etc/passwd":                     "_.._.._etc_passwd",
		"team a/producer":                      "team_a_producer",
		"":                                     "_",
	} {
		if got := defaultStateDir(id); got != filepath.Join(".local", "producer-state", want) {
			t.Errorf("%q: %s", id, got)
		}
	}
}

func rebuilds(h *harness) float64 {
	var n float64
	for _, r := range []string{"missing", "format", "other_owner", "unclean", "no_checkpoint", "behind", "ahead", "corrupt", "unreadable"} {
		n += testutil.ToFloat64(h.metrics.stateRebuilds.WithLabelValues(r))
	}
	return n
}

// checkChangesOnce checks the change records of product: every version of
// every row once, in order, from the snapshot read to want's versions.
func checkChangesOnce(h *harness, product string, want map[string]int64) {
	h.t.Helper()
	version := map[string]int64{}
	for _, r := range h.records(h.cfg.ChangesTopic) {
		if string(r.Key) != product {
			continue
		}
		c, err := schemas.DecodeChange(r.Value)
		if err != nil {
			h.t.Fatal(err)
		}
		switch {
		case c.Op == schemas.OpRead:
			version[c.WarehouseID] = c.After.Version
		case c.After == nil:
			h.t.Fatalf("%s/%s: unexpected %s", product, c.WarehouseID, c.Op)
		case c.After.Version != version[c.WarehouseID]+1:
			h.t.Fatalf("%s/%s: change to version %d after %d: lost or written twice", product, c.WarehouseID, c.After.Version, version[c.WarehouseID])
		default:
			version[c.WarehouseID] = c.After.Version
		}
	}
	for w, v := range want {
		if version[w] != v {
			h.t.Fatalf("%s/%s: changes end at version %d, want %d", product, w, version[w], v)
		}
	}
}

func (h *harness) version(product, warehouse string) int64 {
	h.t.Helper()
	var v int64
	if err := h.conn.QueryRow(context.Background(), `SELECT version FROM inventory_levels WHERE product_id = $1 AND warehouse_id = $2`, product, warehouse).Scan(&v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// A restart whose state store records Kafka's checkpoint uses it as it is:
// no rebuild, and the state it streams on is the one before the stop.
func TestRestartWithIntactStoreDoesNotRebuild(t *testing.T) {
	h := snapshottedAndStopped(t)
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W2','W2')`)
	h.exec(`SELECT stock_receive('P1', 'W2', 4, 'seed')`)
	before := rebuilds(h)
	for i := 1; i <= 3; i++ {
		h.start()
		h.exec(`SELECT stock_adjust('P1', 'W1', 1, 'restart', $1)`, fmt.Sprint(i))
		h.waitLevel("change after a restart", "P1", fmt.Sprintf("W1=%d W2=4", 10+i))
		h.stop()
	}
	if got := rebuilds(h); got != before {
		t.Fatalf("%v rebuilds of the state store over three clean restarts, want none", got-before)
	}
	checkChangesOnce(h, "P1", map[string]int64{"W1": h.version("P1", "W1"), "W2": h.version("P1", "W2")})
}

// A state store restored from an older copy (a backup, a disk snapshot)
// no longer records Kafka's checkpoint: it is found behind and rebuilt from
// Kafka, and what follows is written exactly once, on the right state.
func TestStoreLeftBehindIsRebuilt(t *testing.T) {
	h := snapshottedAndStopped(t)
	old := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", h.cfg.StateDir, old).CombinedOutput(); err != nil {
		t.Fatalf("copying the store: %v %s", err, out)
	}
	h.start()
	h.exec(`INSERT INTO warehouses (warehouse_id, name) VALUES ('W2','W2')`)
	h.exec(`SELECT stock_receive('P1', 'W2', 4, 'new row')`)
	h.exec(`SELECT stock_adjust('P1', 'W1', 5, 'while the copy aged', 'a')`)
	h.waitLevel("changes after the copy", "P1", "W1=15 W2=4")
	h.stop()

	if err := os.RemoveAll(h.cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(old, h.cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	behind := testutil.ToFloat64(h.metrics.stateRebuilds.WithLabelValues("behind"))
	h.start()
	defer h.stop()
	h.exec(`SELECT stock_adjust('P1', 'W2', 1, 'after the restore', 'b')`)
	// W1 comes from the rebuilt state: the copy held W1=10 and no W2.
	h.waitLevel("change after the restore", "P1", "W1=15 W2=5")
	if got := testutil.ToFloat64(h.metrics.stateRebuilds.WithLabelValues("behind")); got != behind+1 {
		t.Fatalf("state_rebuilds_total{reason=behind} = %v, want %v", got, behind+1)
	}
	checkChangesOnce(h, "P1", map[string]int64{"W1": h.version("P1", "W1"), "W2": h.version("P1", "W2")})
}

// With a state cache far smaller than one source transaction's products,
// the transaction's changes go to the store in parts ahead of Kafka (the
// store unclean meanwhile) and its commit makes it clean: the levels are
// right, and a restart uses the store without rebuilding.
func TestSourceTransactionLargerThanTheStateCache(t *testing.T) {
	h := newHarness(t)
	h.cfg.StateCacheMiB = 16 // 4 MiB of decoded products: spills at 2 MiB
	const products, warehouses = 2000, 10
	h.exec(`INSERT INTO warehouses (warehouse_id, name) SELECT 'W' || i, 'W' FROM generate_series(1, $1::int) i`, warehouses)
	h.exec(`INSERT INTO products (product_id, name) SELECT 'P' || i, 'P' FROM generate_series(1, $1::int) i`, products)
	h.exec(`INSERT INTO inventory_levels (product_id, warehouse_id, on_hand, reserved, safety_stock, incoming, low_stock_threshold, version, last_change_kind, last_change_ref, updated_at)
		SELECT 'P' || p, 'W' || w, 10, 0, 0, 0, 5, 1, 'seed', 'seed', now() FROM generate_series(1, $1::int) p, generate_series(1, $2::int) w`, products, warehouses)
	h.start()
	h.waitLevel("snapshot", "P2000", "W1=10 W10=10 W2=10 W3=10 W4=10 W5=10 W6=10 W7=10 W8=10 W9=10")
	// One source transaction over every row, with a long reference so
	// that the products outgrow the cache.
	h.exec(`UPDATE inventory_levels SET on_hand = on_hand + 1, version = version + 1, last_change_kind = 'adjust',
		last_change_ref = repeat('x', 200), updated_at = now() WHERE warehouse_id <> 'W10'`)
	h.waitLevel("the large transaction", "P1", "W1=11 W10=10 W2=11 W3=11 W4=11 W5=11 W6=11 W7=11 W8=11 W9=11")
	h.waitLevel("the large transaction", "P2000", "W1=11 W10=10 W2=11 W3=11 W4=11 W5=11 W6=11 W7=11 W8=11 W9=11")
	if n := testutil.ToFloat64(h.metrics.stateSpills); n < 2 {
		t.Fatalf("%v parts of the transaction went to the store ahead of Kafka, want several", n)
	}
	h.stop()
	before := rebuilds(h)
	h.start()
	defer h.stop()
	h.exec(`SELECT stock_adjust('P1000', 'W10', 1, 'after', 'after')`)
	h.waitLevel("after a restart", "P1000", "W1=11 W10=11 W2=11 W3=11 W4=11 W5=11 W6=11 W7=11 W8=11 W9=11")
	if got := rebuilds(h); got != before {
		t.Fatalf("the restart after the large transaction rebuilt the state store (%v)", got-before)
	}
}
