package inventorydb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stockpipe/stock/internal/inventorydb"
)

func seededLevels(t *testing.T, db *pgxpool.Pool) map[string]inventorydb.Level {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT product_id, warehouse_id FROM inventory_levels")
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ P, W string }])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]inventorydb.Level{}
	for _, p := range pairs {
		l, err := inventorydb.LoadLevel(context.Background(), db, p.P, p.W)
		if err != nil {
			t.Fatal(err)
		}
		out[p.P+"/"+p.W] = l
	}
	return out
}

func TestSeedIsDeterministicAndNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	db := scratchDB(t)
	if err := inventorydb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.Seed(ctx, db, 30, 3); err != nil {
		t.Fatalf("seed: %v", err)
	}
	first := seededLevels(t, db)
	if len(first) != 90 {
		t.Fatalf("seeded %d rows, want 90", len(first))
	}
	for key, l := range first {
		switch {
		case l.LastChangeKind != "seed" || l.Version != 1:
			t.Errorf("%s: kind %q version %d, want seed at 1", key, l.LastChangeKind, l.Version)
		case l.OnHand < 0 || l.OnHand > 500 || l.Reserved > l.OnHand || l.Available() < 0:
			t.Errorf("%s: implausible quantities %+v", key, l)
		case l.LowStockThreshold < 10 || l.LowStockThreshold > 30 || l.SafetyStock > 5:
			t.Errorf("%s: implausible thresholds %+v", key, l)
		}
	}
	if _, ok := first[inventorydb.ProductID(30)+"/"+inventorydb.WarehouseID(3)]; !ok {
		t.Errorf("no row for %s/%s", inventorydb.ProductID(30), inventorydb.WarehouseID(3))
	}

	// A write after seeding must survive a second, larger seed.
	moved, err := inventorydb.Receive(ctx, db, inventorydb.ProductID(1), inventorydb.WarehouseID(1), 7, "po")
	if err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.Seed(ctx, db, 40, 4); err != nil {
		t.Fatalf("second seed: %v", err)
	}
	second := seededLevels(t, db)
	if len(second) != 160 {
		t.Errorf("after second seed %d rows, want 160", len(second))
	}
	for key, l := range first {
		want := l
		if key == moved.ProductID+"/"+moved.WarehouseID {
			want = moved
		}
		if got := second[key]; got != want {
			t.Errorf("%s changed by seeding again:\n got  %+v\n want %+v", key, got, want)
		}
	}

	// Same counts, another database: the same figures.
	other := scratchDB(t)
	if err := inventorydb.Migrate(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.Seed(ctx, other, 40, 4); err != nil {
		t.Fatal(err)
	}
	for key, l := range seededLevels(t, other) {
		if key == moved.ProductID+"/"+moved.WarehouseID {
			continue
		}
		got := second[key]
		l.UpdatedAt, got.UpdatedAt = time.Time{}, time.Time{} // seeded at different times
		if got != l {
			t.Errorf("%s differs between databases: %+v vs %+v", key, got, l)
		}
	}
}

// Past 99 warehouses the ids grow a digit (WH-100) and every pair keeps
// figures of its own; the first 99 keep the figures they always had.
func TestSeedPastNinetyNineWarehouses(t *testing.T) {
	ctx := context.Background()
	db := scratchDB(t)
	if err := inventorydb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.Seed(ctx, db, 2, 3); err != nil {
		t.Fatal(err)
	}
	small := seededLevels(t, db)
	if err := inventorydb.Seed(ctx, db, 3, 101); err != nil {
		t.Fatalf("seeding 101 warehouses: %v", err)
	}
	levels := seededLevels(t, db)
	if len(levels) != 303 {
		t.Fatalf("%d rows, want 303", len(levels))
	}
	for _, id := range []string{inventorydb.WarehouseID(99), inventorydb.WarehouseID(100), inventorydb.WarehouseID(101)} {
		if _, ok := levels[inventorydb.ProductID(3)+"/"+id]; !ok {
			t.Errorf("no row for %s/%s", inventorydb.ProductID(3), id)
		}
	}
	if inventorydb.WarehouseID(100) != "WH-100" {
		t.Errorf("warehouse 100 is %q", inventorydb.WarehouseID(100))
	}
	for key, l := range small {
		if got := levels[key]; got != l {
			t.Errorf("%s changed by seeding more warehouses: %+v, was %+v", key, got, l)
		}
	}
	// Pairs past 99 do not repeat the figures of another pair (the key of
	// the pseudo-random draws is unique per pair).
	same := 0
	for p := 1; p <= 2; p++ {
		a, b := levels[inventorydb.ProductID(p+1)+"/"+inventorydb.WarehouseID(1)], levels[inventorydb.ProductID(p)+"/"+inventorydb.WarehouseID(101)]
		if a.OnHand == b.OnHand && a.Reserved == b.Reserved && a.SafetyStock == b.SafetyStock && a.Incoming == b.Incoming && a.LowStockThreshold == b.LowStockThreshold {
			same++
		}
	}
	if same == 2 {
		t.Error("the pairs past warehouse 99 repeat the figures of other pairs")
	}
}

func TestSeedRefusesCountsOutsideTheIDFormat(t *testing.T) {
	tests := []struct {
		name                 string
		products, warehouses int
	}{
		{"no products", 0, 1},
		{"no warehouses", 1, 0},
		{"seven-digit product ids", inventorydb.MaxSeedProducts + 1, 1},
		{"more warehouses than a level may hold", 1, inventorydb.MaxSeedWarehouses + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Refused before any I/O: a nil querier would panic otherwise.
			err := inventorydb.Seed(context.Background(), nil, tc.products, tc.warehouses)
			if err == nil || errors.Is(err, context.Canceled) {
				t.Errorf("Seed(%d, %d) = %v, want a validation error", tc.products, tc.warehouses, err)
			}
		})
	}
}
