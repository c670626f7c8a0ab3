package inventorydb_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stockpipe/stock/internal/inventorydb"
)

type applied struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

func readApplied(t *testing.T, q inventorydb.Querier) []applied {
	t.Helper()
	rows, err := q.Query(context.Background(), "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[applied])
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return out
}

func TestMigrateTwiceIsANoop(t *testing.T) {
	ctx := context.Background()
	db := testDB(t) // migrated once already
	before := readApplied(t, db)
	if err := inventorydb.Migrate(ctx, db); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	after := readApplied(t, db)
	if !slices.EqualFunc(before, after, func(a, b applied) bool {
		return a.Version == b.Version && a.Name == b.Name && a.AppliedAt.Equal(b.AppliedAt)
	}) {
		t.Errorf("schema_migrations changed:\nbefore %+v\nafter  %+v", before, after)
	}
	v, err := inventorydb.SchemaVersion(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if v != inventorydb.LatestVersion() || v < 2 {
		t.Errorf("schema version %d, want latest %d", v, inventorydb.LatestVersion())
	}
}

func TestMigrateConcurrentlyFromEmpty(t *testing.T) {
	ctx := context.Background()
	db := scratchDB(t)
	if v, err := inventorydb.SchemaVersion(ctx, db); err != nil || v != 0 {
		t.Fatalf("empty schema at version %d (%v), want 0", v, err)
	}
	const runners = 4
	var wg sync.WaitGroup
	errs := make(chan error, runners)
	for range runners {
		wg.Go(func() { errs <- inventorydb.Migrate(ctx, db) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent migrate: %v", err)
		}
	}
	got := readApplied(t, db)
	if len(got) != inventorydb.LatestVersion() {
		t.Fatalf("applied %+v, want versions 1..%d once each", got, inventorydb.LatestVersion())
	}
	for i, a := range got {
		if a.Version != i+1 {
			t.Errorf("applied[%d] = version %d, want %d", i, a.Version, i+1)
		}
	}
	// The write API is there and works in this schema.
	if err := inventorydb.AddProduct(ctx, db, "P", ""); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.AddWarehouse(ctx, db, "W", ""); err != nil {
		t.Fatal(err)
	}
	if l, err := inventorydb.Receive(ctx, db, "P", "W", 3, "po"); err != nil || l.OnHand != 3 {
		t.Errorf("receive in a fresh schema = %+v, %v", l, err)
	}
}
