package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockpipe/stock/internal/testenv"
	"github.com/stockpipe/stock/schemas"
)

// peakRSSMiB is a process's peak resident memory (VmHWM) so far.
func peakRSSMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestProducerMillionRowTransaction sends one source transaction that
// updates a million rows through the producer: every row's change reaches
// Kafka exactly once, all in one source transaction with distinct positions,
// every product's level equals PostgreSQL, and the producer's memory does not
// grow with the transaction (it holds the per-product state, not the
// transaction: records go into the open Kafka transaction in parts): its
// peak stays under 512 MiB.
func TestProducerMillionRowTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads a million change records")
	}
	const products, warehouses = 50_000, 20
	conn := db(t, products, warehouses)
	ctx := context.Background()
	name := testenv.Name(t, "million")
	prefix := name + "."
	t.Cleanup(func() { cleanupTopics(t, prefix) })
	p := start(t, "producer", "--postgres-url", conn.Config().ConnString(), "--slot", name, "--publication", name,
		"--brokers", strings.Join(testenv.KafkaBrokers(), ","), "--topic-prefix", prefix, "--partitions", "3", "--metrics-addr", "",
		"--state-dir", t.TempDir())
	p.waitLog(t, `"replication started"`, 5*time.Minute)
	// Peak memory with the state of a million rows built by the snapshot.
	base := peakRSSMiB(t, p.cmd.Process.Pid)

	tag, err := conn.Exec(ctx, `UPDATE inventory_levels SET on_hand = on_hand + 1, version = version + 1,
		last_change_kind = 'adjust', last_change_ref = 'million', updated_at = now()`)
	if err != nil {
		t.Fatal(err)
	}
	rows := tag.RowsAffected()
	if rows < 1_000_000 {
		t.Fatalf("updated %d rows, want a million", rows)
	}
	var target string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	// The producer confirms an LSN only after the Kafka transaction holding
	// it committed.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, name, target).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			t.Fatalf("the producer did not confirm %s", target)
		}
		time.Sleep(500 * time.Millisecond)
	}
	peak := peakRSSMiB(t, p.cmd.Process.Pid)
	p.stop()
	t.Logf("producer peak RSS: %.0f MiB after the snapshot of %d rows, %.0f MiB after the %d-row transaction", base, products*warehouses, peak, rows)
	// Holding the transaction's records would take well over a GiB (each
	// change record carries two row images). The producer holds the state
	// (Pebble's cache and memtables, a quarter of it decoded) and a bounded
	// part of the transaction; the whole process stays under 512 MiB, the
	// bound docs/benchmarks.md promises for it.
	if grown := peak - base; grown > 384 {
		t.Errorf("peak RSS grew by %.0f MiB during the transaction: memory follows the transaction's size", grown)
	}
	if peak >= 512 {
		t.Errorf("peak RSS %.0f MiB, want under 512 MiB", peak)
	}

	type key struct{ p, w string }
	seen := make(map[key]struct{}, rows)
	indexes := make(map[int32]struct{}, rows)
	var txID, lsn int64
	eachRecord(t, prefix+schemas.TopicChanges, func(r *kgo.Record) {
		c, err := schemas.DecodeChange(r.Value)
		if err != nil {
			t.Fatalf("decoding change at %d/%d: %v", r.Partition, r.Offset, err)
		}
		if c.ChangeRef != "million" {
			return
		}
		k := key{c.ProductID, c.WarehouseID}
		if _, dup := seen[k]; dup {
			t.Fatalf("%v: changed twice", k)
		}
		seen[k] = struct{}{}
		if c.Op != schemas.OpUpdate || c.Before == nil || c.After == nil || c.After.OnHand != c.Before.OnHand+1 {
			t.Fatalf("%v: change %s before %+v after %+v, want an update adding 1", k, c.Op, c.Before, c.After)
		}
		if txID == 0 {
			txID, lsn = c.TxID, c.Position.LSN
		}
		if c.TxID != txID || c.Position.LSN != lsn {
			t.Fatalf("%v: tx %d at LSN %d, want the one transaction %d at %d", k, c.TxID, c.Position.LSN, txID, lsn)
		}
		if _, dup := indexes[c.Position.Index]; dup {
			t.Fatalf("%v: position index %d used twice", k, c.Position.Index)
		}
		indexes[c.Position.Index] = struct{}{}
	})
	if int64(len(seen)) != rows {
		t.Fatalf("%d rows have their change in Kafka, want %d", len(seen), rows)
	}

	var ids []string
	r, err := conn.Query(ctx, `SELECT product_id FROM products`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id string
		if err := r.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if msg := compareLevels(t, readAll(t, prefix+schemas.TopicLevels), pgRows(t, conn, ids)); msg != "" {
		t.Fatalf("levels differ from PostgreSQL: %s", msg)
	}
}
