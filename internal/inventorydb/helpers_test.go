package inventorydb_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// testDB is a pool on a migrated database of the test's own: a sweeper or
// simulator running against the shared database (make run, a benchmark)
// must not be able to touch the rows a test asserts on.
func testDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	url := testenv.Database(t, "inventorydb")
	db, err := inventorydb.OpenPool(ctx, inventorydb.PoolConfig{
		URL: url, MaxConns: 16, ApplicationName: "inventorydb-test",
	})
	if err != nil {
		t.Fatalf("connecting to the local stack's PostgreSQL (scripts/stack.sh): %v", err)
	}
	t.Cleanup(db.Close)
	if err := inventorydb.Migrate(ctx, db); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return db
}

// scratchDB is a pool whose search_path is a new, empty schema dropped at
// cleanup: for what the shared schema cannot show (a first migration, seeding
// from nothing).
func scratchDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	shared := testDB(t)
	schema := testenv.Name(t, "inventorydb")
	if _, err := shared.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := shared.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	cfg := shared.Config().Copy()
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// fixture is one test's own product and warehouses in the shared database,
// with ids nobody else uses; everything hanging off them is deleted at
// cleanup.
type fixture struct {
	db      *pgxpool.Pool
	product string
	wh      []string // sorted, so wh[0] locks before wh[1]
	ids     map[string]string
}

func newFixture(t *testing.T, warehouses int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{db: testDB(t), product: testenv.Name(t, "sku"), ids: map[string]string{}}
	if err := inventorydb.AddProduct(ctx, f.db, f.product, t.Name()); err != nil {
		t.Fatal(err)
	}
	for range warehouses {
		wh := testenv.Name(t, "wh")
		if err := inventorydb.AddWarehouse(ctx, f.db, wh, t.Name()); err != nil {
			t.Fatal(err)
		}
		f.wh = append(f.wh, wh)
	}
	slices.Sort(f.wh)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, c := range []struct {
			sql string
			arg any
		}{
			{"DELETE FROM stock_adjustments WHERE product_id = $1", f.product},
			{"DELETE FROM stock_reservations WHERE product_id = $1", f.product},
			{"DELETE FROM inventory_levels WHERE product_id = $1", f.product},
			{"DELETE FROM products WHERE product_id = $1", f.product},
			{"DELETE FROM warehouses WHERE warehouse_id = ANY($1)", f.wh},
		} {
			if _, err := f.db.Exec(ctx, c.sql, c.arg); err != nil {
				t.Errorf("cleaning up: %s: %v", c.sql, err)
			}
		}
	})
	return f
}

// id is a reservation id unique to this fixture, stable per label.
func (f *fixture) id(t *testing.T, label string) string {
	if id, ok := f.ids[label]; ok {
		return id
	}
	f.ids[label] = testenv.Name(t, "res_"+label)
	return f.ids[label]
}

func (f *fixture) receive(t *testing.T, wh string, qty int) inventorydb.Level {
	t.Helper()
	l, err := inventorydb.Receive(context.Background(), f.db, f.product, wh, qty, "setup")
	if err != nil {
		t.Fatalf("setup receive: %v", err)
	}
	return l
}

func (f *fixture) reserve(t *testing.T, label, wh string, qty int) inventorydb.Reservation {
	t.Helper()
	r, err := inventorydb.Reserve(context.Background(), f.db, inventorydb.ReserveRequest{
		ReservationID: f.id(t, label), ProductID: f.product, WarehouseID: wh, Quantity: qty,
	})
	if err != nil {
		t.Fatalf("setup reserve: %v", err)
	}
	return r
}

// row is the part of a Level a write decides.
type row struct {
	WH       string
	OnHand   int
	Reserved int
	Version  int64
	Kind     string
	Ref      string
}

func (f *fixture) rows(t *testing.T) []row {
	t.Helper()
	s := f.snapshot(t)
	out := make([]row, 0, len(s.levels))
	for _, l := range s.levels {
		out = append(out, row{l.WarehouseID, l.OnHand, l.Reserved, l.Version, l.LastChangeKind, l.LastChangeRef})
	}
	return out
}

// snapshot is everything the write API may change for the fixture's product.
type snapshot struct {
	levels       []inventorydb.Level
	reservations []inventorydb.Reservation
	adjustments  int
}

func (f *fixture) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	rows, err := f.db.Query(ctx, `SELECT warehouse_id FROM inventory_levels WHERE product_id = $1 ORDER BY warehouse_id`, f.product)
	if err != nil {
		t.Fatal(err)
	}
	whs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, wh := range whs {
		l, err := inventorydb.LoadLevel(ctx, f.db, f.product, wh)
		if err != nil {
			t.Fatal(err)
		}
		s.levels = append(s.levels, l)
	}
	rows, err = f.db.Query(ctx, `SELECT reservation_id FROM stock_reservations WHERE product_id = $1 ORDER BY reservation_id`, f.product)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		r, err := inventorydb.LoadReservation(ctx, f.db, id)
		if err != nil {
			t.Fatal(err)
		}
		s.reservations = append(s.reservations, r)
	}
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM stock_adjustments WHERE product_id = $1`, f.product).Scan(&s.adjustments); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	return s.adjustments == o.adjustments &&
		slices.EqualFunc(s.levels, o.levels, func(a, b inventorydb.Level) bool {
			ua, ub := a.UpdatedAt, b.UpdatedAt
			a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
			return a == b && ua.Equal(ub)
		}) &&
		slices.EqualFunc(s.reservations, o.reservations, func(a, b inventorydb.Reservation) bool {
			return a.ReservationID == b.ReservationID && a.Status == b.Status && a.Quantity == b.Quantity &&
				a.Backorder == b.Backorder && a.ExpiresAt.Equal(b.ExpiresAt) && a.UpdatedAt.Equal(b.UpdatedAt)
		})
}

func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}
