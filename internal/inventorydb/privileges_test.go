package inventorydb_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stockpipe/stock/internal/inventorydb"
	"github.com/stockpipe/stock/internal/testenv"
)

// The roles' own behaviour (a writer refused a direct UPDATE, the CDC role
// refused a write function) needs roles the plaintext stack's owner may not
// create; internal/securetest checks it on the secure profile. Here: what
// the migration does for any owner.

var writeFunctions = []string{
	"stock_receive", "stock_adjust", "stock_count", "stock_transfer",
	"stock_reserve", "stock_release", "stock_commit", "stock_expire", "stock_request_resnapshot",
}

func TestWriteFunctionsRunAsOwnerWithPinnedSearchPath(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	rows, err := db.Query(ctx, `
		SELECT p.proname, p.prosecdef, coalesce(p.proconfig, '{}'),
		       has_function_privilege('public', p.oid, 'EXECUTE')
		  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		 WHERE n.nspname = 'public' AND (p.proname LIKE 'stock\_%' OR p.proname LIKE '\_stock\_%')`)
	if err != nil {
		t.Fatal(err)
	}
	type fn struct {
		Name          string
		SecDef        bool
		Config        []string
		PublicExecute bool
	}
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fn])
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range fns {
		seen[f.Name] = true
		if f.PublicExecute {
			t.Errorf("%s: PUBLIC may execute it", f.Name)
		}
		if !slices.Contains(writeFunctions, f.Name) {
			continue
		}
		if !f.SecDef {
			t.Errorf("%s: not SECURITY DEFINER", f.Name)
		}
		if !slices.Equal(f.Config, []string{"search_path=public, pg_temp"}) {
			t.Errorf("%s: config %q, want search_path pinned to public, pg_temp", f.Name, f.Config)
		}
	}
	for _, name := range append(writeFunctions, "_stock_lock_level", "_stock_write_level", "_stock_end_reservation", "stock_grant_roles") {
		if !seen[name] {
			t.Errorf("function %s missing", name)
		}
	}
	var tablePrivileges int
	if err := db.QueryRow(ctx, `
		SELECT count(*) FROM information_schema.role_table_grants
		 WHERE grantee = 'PUBLIC' AND table_schema = 'public'
		   AND table_name IN ('products', 'warehouses', 'inventory_levels', 'stock_reservations',
		                      'stock_adjustments', 'stock_producer_slots')`).Scan(&tablePrivileges); err != nil {
		t.Fatal(err)
	}
	if tablePrivileges != 0 {
		t.Errorf("PUBLIC holds %d privileges on the stock tables, want none", tablePrivileges)
	}
	// Granting again is harmless (the plaintext stack has none of the
	// roles: nothing to grant, and no error).
	if _, err := db.Exec(ctx, "SELECT stock_grant_roles()"); err != nil {
		t.Errorf("stock_grant_roles again: %v", err)
	}
}

// A caller who puts a table of its own named like ours first on its
// search_path must not be able to redirect a write function that runs with
// the owner's rights: the write lands in the schema's own table.
func TestWriteFunctionIgnoresCallersSearchPath(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	shadow := testenv.Name(t, "shadow")
	for _, sql := range []string{
		"CREATE SCHEMA " + shadow,
		"CREATE TABLE " + shadow + ".inventory_levels (LIKE public.inventory_levels INCLUDING ALL)",
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := inventorydb.AddProduct(ctx, db, "P", ""); err != nil {
		t.Fatal(err)
	}
	if err := inventorydb.AddWarehouse(ctx, db, "W", ""); err != nil {
		t.Fatal(err)
	}
	cfg := db.Config().Copy()
	cfg.ConnConfig.RuntimeParams["search_path"] = shadow + ", public"
	caller, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	if _, err := caller.Exec(ctx, "SELECT * FROM public.stock_receive('P', 'W', 7, 'po')"); err != nil {
		t.Fatalf("receive with a shadowing search_path: %v", err)
	}
	var inShadow int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM "+shadow+".inventory_levels").Scan(&inShadow); err != nil {
		t.Fatal(err)
	}
	l, err := inventorydb.LoadLevel(ctx, db, "P", "W")
	if err != nil || l.OnHand != 7 || inShadow != 0 {
		t.Errorf("public row %+v (%v), %d rows in the shadowing table; want on_hand 7 in public and none there", l, err, inShadow)
	}
}

// The migration creates the producer's default publication and its slot
// ledger, so the producer's own role needs neither table ownership nor
// CREATE on the database or schema.
func TestMigrationCreatesPublicationAndLedger(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	var tables []string
	if err := db.QueryRow(ctx, `SELECT coalesce(array_agg(schemaname || '.' || tablename), '{}')
		FROM pg_publication_tables WHERE pubname = 'stock_pub'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tables, []string{"public.inventory_levels"}) {
		t.Errorf("stock_pub publishes %v, want public.inventory_levels", tables)
	}
	var ledger bool
	if err := db.QueryRow(ctx, "SELECT to_regclass('public.stock_producer_slots') IS NOT NULL").Scan(&ledger); err != nil || !ledger {
		t.Errorf("slot ledger present: %v (%v)", ledger, err)
	}
}
