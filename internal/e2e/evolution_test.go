package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/schemas"
)

// The source schema changes under a streaming pipeline the way a later
// migration changes it, and nothing stops or restarts:
//   - columns are added to inventory_levels (one with a default, one
//     without) while writers keep writing: the producer decodes rows by
//     column name, ignores the new columns, and loses or repeats nothing;
//   - a write function is added (CREATE FUNCTION, as a migration would) and
//     used at once: its changes stream like the others', exactly once.
//
// After quiescence every product's last level equals PostgreSQL, every
// row's changes are there once with consecutive versions, and the API
// serves PostgreSQL's stock.
func TestSourceSchemaEvolvesWhileStreaming(t *testing.T) {
	ctx := context.Background()
	conn := db(t, 0, 0)
	products := make([]string, 12)
	wh1, wh2 := ident(t, "WHA"), ident(t, "WHB")
	for i := range products {
		products[i] = fmt.Sprintf("%s-%02d", ident(t, "SKU"), i)
		newProduct(t, conn, products[i], wh1, wh2)
	}
	p := startPipeline(t, conn)
	waitFor(t, p.api, products[0], func(p product) bool { return p.OnHand == 140 })

	// Writers on connections of their own, through the migration.
	var writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			wc, err := pgx.Connect(ctx, conn.Config().ConnString())
			if err != nil {
				t.Errorf("connecting a writer: %v", err)
				return
			}
			defer wc.Close(context.Background())
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := products[(i*2+w)%len(products)]
				if _, err := wc.Exec(ctx, `SELECT stock_adjust($1, $2, 1, 'recount', $3)`, id, wh1, fmt.Sprintf("evo-%d-%d", w, i)); err != nil {
					t.Errorf("adjust during the migration: %v", err)
					return
				}
				writes.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	waitWrites := func(n int64) {
		for target := writes.Load() + n; writes.Load() < target && !t.Failed(); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitWrites(20)
	// ADD COLUMN with a constant default rewrites nothing (PostgreSQL 11+);
	// the publication publishes every column, so the next changes carry
	// them.
	exec1(t, conn, `ALTER TABLE inventory_levels ADD COLUMN bin_location text NOT NULL DEFAULT 'A-01'`)
	waitWrites(20)
	exec1(t, conn, `ALTER TABLE inventory_levels ADD COLUMN reorder_point integer`)
	waitWrites(20)
	// A write function of a later migration, using the new column: called
	// as soon as it exists, with no restart of the producer.
	exec1(t, conn, `CREATE FUNCTION stock_set_reorder(p_product_id text, p_warehouse_id text, p_point int, p_ref text)
		RETURNS void LANGUAGE sql AS $$
			UPDATE inventory_levels SET reorder_point = p_point, on_hand = on_hand + 2,
			       version = version + 1, last_change_kind = 'count', last_change_ref = p_ref, updated_at = now()
			 WHERE product_id = p_product_id AND warehouse_id = p_warehouse_id
		$$`)
	for i, id := range products {
		exec1(t, conn, `SELECT stock_set_reorder($1, $2, 25, $3)`, id, wh2, fmt.Sprintf("evo-reorder-%d", i))
	}
	waitWrites(20)
	close(stop)
	wg.Wait()
	t.Logf("%d adjusts ran through two ADD COLUMNs and a new write function", writes.Load())

	want := pgRows(t, conn, products)
	levels := p.prefix + schemas.TopicLevels
	var mismatch string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if mismatch = compareLevels(t, readAll(t, levels), want); mismatch == "" || time.Now().After(deadline) {
			break
		}
	}
	if mismatch != "" {
		t.Fatalf("levels never matched PostgreSQL after the migration: %s", mismatch)
	}
	checkChanges(t, readAll(t, p.prefix+schemas.TopicChanges), want)
	for _, id := range products {
		rows := want[id]
		got := waitFor(t, p.api, id, func(p product) bool {
			return p.warehouse(wh1).OnHand == int64(rows[wh1].OnHand) && p.warehouse(wh2).OnHand == int64(rows[wh2].OnHand)
		})
		if got.warehouse(wh2).Reserved != int64(rows[wh2].Reserved) {
			t.Errorf("%s: API %+v, PostgreSQL %+v", id, got, rows)
		}
	}
}
