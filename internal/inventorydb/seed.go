package inventorydb

import (
	"context"
	"errors"
	"fmt"
)

// Seed limits: product ids are SKU-%06d, and the SQL pads to exactly that
// width; warehouse ids are WH-%02d, wider past 99 (WH-100), up to the
// Kafka contract's 10,000 warehouses per product.
const (
	MaxSeedProducts   = 999_999
	MaxSeedWarehouses = 10_000
)

// ProductID is the id Seed gives product i (1-based): SKU-000042.
func ProductID(i int) string { return fmt.Sprintf("SKU-%06d", i) }

// WarehouseID is the id Seed gives warehouse i (1-based): WH-07, WH-100.
func WarehouseID(i int) string { return fmt.Sprintf("WH-%02d", i) }

// seedSQL inserts products, warehouses and one inventory row per pair in one
// set-based statement. The data-modifying CTEs and the final INSERT run in one
// statement, and the foreign-key checks fire at its end, after all three.
//
// Quantities are deterministic pseudo-random: hashint8extended (the stable
// hash behind hash partitioning) of the pair's key with a salt per column, so
// every database seeded with the same counts holds the same figures. Rows that
// exist are left untouched (ON CONFLICT DO NOTHING). available starts >= 0:
// reserved and safety_stock never exceed on_hand.
const seedSQL = `
WITH p AS (
    INSERT INTO products (product_id, name)
    SELECT 'SKU-' || lpad(i::text, 6, '0'), 'Product ' || lpad(i::text, 6, '0')
      FROM generate_series(1, $1::int) AS i
    ON CONFLICT (product_id) DO NOTHING
), w AS (
    INSERT INTO warehouses (warehouse_id, name)
    SELECT 'WH-' || lpad(i::text, greatest(length(i::text), 2), '0'), 'Warehouse ' || lpad(i::text, greatest(length(i::text), 2), '0')
      FROM generate_series(1, $2::int) AS i
    ON CONFLICT (warehouse_id) DO NOTHING
), k AS (
    -- One key per pair: pi * 100 + wi below warehouse 100 (the figures of
    -- databases seeded before wider ids existed), negative past it, where
    -- pi * 100 + wi would repeat another pair's.
    SELECT pi, wi, CASE WHEN wi < 100 THEN pi::bigint * 100 + wi ELSE -(pi::bigint * 100000 + wi) END AS k
      FROM generate_series(1, $1::int) AS pi CROSS JOIN generate_series(1, $2::int) AS wi
), r AS (
    -- r1..r6: uniform draws in [0, 2^31) per pair, one per salt.
    SELECT pi, wi,
           (hashint8extended(k, 1) & 2147483647) AS r1,
           (hashint8extended(k, 2) & 2147483647) AS r2,
           (hashint8extended(k, 3) & 2147483647) AS r3,
           (hashint8extended(k, 4) & 2147483647) AS r4,
           (hashint8extended(k, 5) & 2147483647) AS r5,
           (hashint8extended(k, 6) & 2147483647) AS r6
      FROM k
), q AS (
    SELECT pi, wi, r3, r4, r5, r6,
           -- one row in 25 is out of stock, the rest 1..500
           CASE WHEN r1 % 25 = 0 THEN 0 ELSE 1 + (r1 / 25) % 500 END::int AS on_hand,
           -- three rows in ten hold a few open reservations
           CASE WHEN r2 % 10 < 3 THEN 1 + (r2 / 10) % 15 ELSE 0 END::int AS reserved
      FROM r
)
INSERT INTO inventory_levels (product_id, warehouse_id, on_hand, reserved, safety_stock, incoming,
                              low_stock_threshold, version, last_change_kind, last_change_ref, updated_at)
SELECT 'SKU-' || lpad(pi::text, 6, '0'),
       'WH-' || lpad(wi::text, greatest(length(wi::text), 2), '0'),
       on_hand,
       least(reserved, on_hand),
       least((r3 % 6)::int, on_hand - least(reserved, on_hand)),
       CASE WHEN r4 % 10 = 0 THEN (r4 / 10) % 200 ELSE 0 END::int,
       (10 + r5 % 21)::int,
       1, 'seed', 'seed', now()
  FROM q
ON CONFLICT (product_id, warehouse_id) DO NOTHING`

// Seed idempotently creates the demo data: products SKU-000001..
// SKU-%06d(products), warehouses WH-01..WH-%02d(warehouses) and one
// inventory_levels row per pair (last_change_kind 'seed', version 1) with
// deterministic pseudo-random quantities. Existing rows are not changed, so
// seeding again, or with larger counts, only adds what is missing.
func Seed(ctx context.Context, db Querier, products, warehouses int) error {
	var errs []error
	if products < 1 || products > MaxSeedProducts {
		errs = append(errs, fmt.Errorf("products must be in 1..%d, got %d", MaxSeedProducts, products))
	}
	if warehouses < 1 || warehouses > MaxSeedWarehouses {
		errs = append(errs, fmt.Errorf("warehouses must be in 1..%d, got %d", MaxSeedWarehouses, warehouses))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	if _, err := db.Exec(ctx, seedSQL, products, warehouses); err != nil {
		return fmt.Errorf("seeding %d products x %d warehouses: %w", products, warehouses, err)
	}
	return nil
}
