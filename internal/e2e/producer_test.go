package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

// pgRow is one inventory_levels row as PostgreSQL holds it.
type pgRow struct {
	OnHand, Reserved int32
	Version          int64
}

func pgRows(t *testing.T, conn *pgx.Conn, products []string) map[string]map[string]pgRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT product_id, warehouse_id, on_hand, reserved, version
		FROM inventory_levels WHERE product_id = ANY($1)`, products)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[string]pgRow{}
	for rows.Next() {
		var p, w string
		var r pgRow
		if err := rows.Scan(&p, &w, &r.OnHand, &r.Reserved, &r.Version); err != nil {
			t.Fatal(err)
		}
		if out[p] == nil {
			out[p] = map[string]pgRow{}
		}
		out[p][w] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestProducerCrashSafety kills the producer with SIGKILL at random moments
// (the first ones while it takes its snapshot) under a steady write load,
// then checks all three promises on what Kafka holds: every committed change
// of the test's products is there exactly once, in position order per
// product, and each product's last stock.levels.v1 record equals PostgreSQL.
func TestProducerCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the producer for a minute or more")
	}
	// 5,000 seeded products x 20 warehouses: a snapshot long enough for the
	// first kills to land inside it.
	conn := db(t, 5000, 20)
	ctx := context.Background()
	name := testenv.Name(t, "crash")
	prefix := name + "."
	wh1, wh2 := ident(t, "WHA"), ident(t, "WHB")
	products := make([]string, 40)
	for i := range products {
		products[i] = ident(t, "SKU")
		newProduct(t, conn, products[i], wh1, wh2)
	}
	t.Cleanup(func() { cleanupTopics(t, prefix) })
	url := conn.Config().ConnString()

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	l := startLoad(pool, products, wh1, wh2)

	brokers := strings.Join(testenv.KafkaBrokers(), ",")
	// One state store for every run, as on a host whose producer is
	// killed and started again: each start uses it as found or rebuilds it.
	args := []string{"--postgres-url", url, "--slot", name, "--publication", name,
		"--brokers", brokers, "--topic-prefix", prefix, "--partitions", "3", "--metrics-addr", "", "--state-dir", t.TempDir()}
	// The kill schedule is random so that runs cover different moments;
	// the seed is logged so that a failing schedule can be replayed
	// (STOCK_E2E_KILL_SEED).
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STOCK_E2E_KILL_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("STOCK_E2E_KILL_SEED: %v", err)
		}
	}
	t.Logf("kill schedule seed %d (STOCK_E2E_KILL_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const kills = 20
	asFound := 0 // starts that used the state store as the last kill left it
	for i := 0; i < kills; i++ {
		p := start(t, "producer", args...)
		var wait time.Duration
		if i < 3 {
			// Early kills land within the snapshot of the whole table.
			wait = time.Duration(100+rng.IntN(400)) * time.Millisecond
		} else {
			// Later kills land anywhere in streaming, once it started.
			p.waitLog(t, `"replication started"`, 2*time.Minute)
			wait = time.Duration(rng.IntN(2500)) * time.Millisecond
		}
		time.Sleep(wait)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		_ = p.cmd.Wait()
		if i < 3 {
			t.Logf("kill %d after %s; snapshot finished before the kill: %v", i, wait, p.logged(`"snapshot written"`))
		}
		if p.logged(`"msg":"state store matches kafka's checkpoint; no rebuild"`) {
			asFound++
		}
	}
	writes := l.halt()
	t.Logf("%d writes committed during %d kills; %d starts used the state store as found, the others rebuilt it", writes, kills, asFound)
	// A kill in streaming leaves the store behind Kafka only between a
	// Kafka commit and the store's write of it: most starts after one must
	// find it usable, or the store is not doing its job.
	if asFound == 0 {
		t.Error("no start used the state store as the previous kill left it")
	}

	// A last, clean run catches up with everything committed.
	final := start(t, "producer", args...)
	want := pgRows(t, conn, products)
	levelsTopic := prefix + schemas.TopicLevels
	deadline := time.Now().Add(90 * time.Second)
	var mismatch string
	for {
		mismatch = compareLevels(t, readAll(t, levelsTopic), want)
		if mismatch == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if mismatch != "" {
		t.Fatalf("levels never matched PostgreSQL: %s", mismatch)
	}
	final.stop()

	t.Run("every change exactly once in position order", func(t *testing.T) {
		checkChanges(t, readAll(t, prefix+schemas.TopicChanges), want)
	})
}

// compareLevels returns "" when the last level of every product equals want.
func compareLevels(t *testing.T, recs []*kgo.Record, want map[string]map[string]pgRow) string {
	t.Helper()
	last := map[string]*schemas.StockLevel{}
	for _, r := range recs {
		id := string(r.Key)
		if _, ok := want[id]; !ok {
			continue
		}
		if r.Value == nil {
			last[id] = nil
			continue
		}
		l, err := schemas.DecodeLevel(r.Value)
		if err != nil {
			t.Fatalf("decoding level at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		last[id] = l
	}
	for id, rows := range want {
		l := last[id]
		if l == nil {
			return fmt.Sprintf("%s: no level", id)
		}
		if len(l.Warehouses) != len(rows) {
			return fmt.Sprintf("%s: %d warehouses, want %d", id, len(l.Warehouses), len(rows))
		}
		for _, w := range l.Warehouses {
			pg := rows[w.WarehouseID]
			if w.OnHand != pg.OnHand || w.Reserved != pg.Reserved || w.Version != pg.Version {
				return fmt.Sprintf("%s/%s: kafka on_hand=%d reserved=%d version=%d, postgres %+v", id, w.WarehouseID, w.OnHand, w.Reserved, w.Version, pg)
			}
		}
	}
	return ""
}

// checkChanges walks each row's change records in offset order: the last
// snapshot read sets the version, and from then on every update must carry
// exactly the next version (a gap is a lost change, a repeat a duplicate),
// with positions strictly increasing per product, ending at PostgreSQL's
// version.
func checkChanges(t *testing.T, recs []*kgo.Record, want map[string]map[string]pgRow) {
	type key struct{ p, w string }
	version := map[key]int64{}
	lastPos := map[string]schemas.Position{}
	streamed := map[string]bool{}
	updates := 0
	for _, r := range recs {
		id := string(r.Key)
		if _, ok := want[id]; !ok {
			continue
		}
		c, err := schemas.DecodeChange(r.Value)
		if err != nil {
			t.Fatalf("decoding change at %d/%d: %v", r.Partition, r.Offset, err)
		}
		k := key{c.ProductID, c.WarehouseID}
		switch c.Op {
		case schemas.OpRead:
			if streamed[id] {
				t.Fatalf("%v: snapshot read after streamed changes at offset %d", k, r.Offset)
			}
			if c.After.Version < version[k] {
				t.Fatalf("%v: snapshot went back from version %d to %d", k, version[k], c.After.Version)
			}
			version[k] = c.After.Version
		case schemas.OpUpdate, schemas.OpCreate:
			streamed[id] = true
			if got, exp := c.After.Version, version[k]+1; got != exp {
				t.Fatalf("%v: change at %d/%d has version %d, want %d (lost or duplicated change)", k, r.Partition, r.Offset, got, exp)
			}
			version[k] = c.After.Version
			pos := c.Position.Value()
			if prev, ok := lastPos[id]; ok && !pos.After(prev.Value()) {
				t.Fatalf("%s: position %s not after %s", id, pos, prev.Value())
			}
			lastPos[id] = c.Position
			updates++
		default:
			t.Fatalf("%v: unexpected op %q", k, c.Op)
		}
	}
	for id, rows := range want {
		for w, pg := range rows {
			if got := version[key{id, w}]; got != pg.Version {
				t.Fatalf("%s/%s: changes end at version %d, postgres has %d", id, w, got, pg.Version)
			}
		}
	}
	if updates == 0 {
		t.Fatal("no streamed change of the test's products reached Kafka")
	}
	t.Logf("%d streamed row changes checked", updates)
}
