-- 0001: the system-of-record tables. Every stock change goes through the write
-- functions of 0002; these tables carry the invariants the functions rely on.

CREATE TABLE products (
    product_id text PRIMARY KEY CHECK (product_id <> ''),
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE warehouses (
    warehouse_id text PRIMARY KEY CHECK (warehouse_id <> ''),
    name         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per (product, warehouse). available = on_hand - reserved - safety_stock
-- is derived, never stored, and may go negative: that is the oversold signal.
-- last_change_kind and last_change_ref are NOT NULL because the Kafka contract
-- (schemas/stock_changes.avsc) carries them as plain strings.
CREATE TABLE inventory_levels (
    product_id          text        NOT NULL REFERENCES products (product_id),
    warehouse_id        text        NOT NULL REFERENCES warehouses (warehouse_id),
    on_hand             int         NOT NULL DEFAULT 0  CHECK (on_hand >= 0),
    reserved            int         NOT NULL DEFAULT 0  CHECK (reserved >= 0),
    safety_stock        int         NOT NULL DEFAULT 0  CHECK (safety_stock >= 0),
    incoming            int         NOT NULL DEFAULT 0  CHECK (incoming >= 0),
    low_stock_threshold int         NOT NULL DEFAULT 10 CHECK (low_stock_threshold >= 0),
    -- Starts at 1 and grows by one with every write; the write functions use 0
    -- internally for "row not stored yet".
    version             bigint      NOT NULL DEFAULT 1  CHECK (version > 0),
    last_change_kind    text        NOT NULL DEFAULT '',
    last_change_ref     text        NOT NULL DEFAULT '',
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, warehouse_id)
);

-- The CDC producer keeps the before image itself (per-product state), so the
-- WAL only needs the key of updated and deleted rows. Stated explicitly so
-- nobody "fixes" it to FULL and doubles the WAL volume.
ALTER TABLE inventory_levels REPLICA IDENTITY DEFAULT;

-- Serves the per-warehouse FK check when a warehouse is deleted and
-- per-warehouse reads by operators.
CREATE INDEX inventory_levels_warehouse_idx ON inventory_levels (warehouse_id);

CREATE TABLE stock_reservations (
    reservation_id text        PRIMARY KEY CHECK (reservation_id <> ''),
    product_id     text        NOT NULL,
    warehouse_id   text        NOT NULL,
    quantity       int         NOT NULL CHECK (quantity > 0),
    status         text        NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'released', 'committed', 'expired')),
    backorder      boolean     NOT NULL DEFAULT false,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- A reservation holds stock of one inventory row; stock_reserve creates the
    -- row first when the pair is known but has never held stock.
    FOREIGN KEY (product_id, warehouse_id) REFERENCES inventory_levels (product_id, warehouse_id)
);

-- The expiry sweep (stock_expire) reads only active reservations by due time.
CREATE INDEX stock_reservations_expiry_idx ON stock_reservations (expires_at) WHERE status = 'active';
-- Serves the FK check when an inventory row is deleted.
CREATE INDEX stock_reservations_level_idx ON stock_reservations (product_id, warehouse_id);

-- Journal of manual adjustments: the reason an adjustment needs has no column
-- in inventory_levels, and an auditor asks for it long after the row moved on.
CREATE TABLE stock_adjustments (
    adjustment_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id    text        NOT NULL,
    warehouse_id  text        NOT NULL,
    delta         int         NOT NULL CHECK (delta <> 0),
    reason        text        NOT NULL CHECK (btrim(reason) <> ''),
    ref           text        NOT NULL,
    on_hand_after int         NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (product_id, warehouse_id) REFERENCES inventory_levels (product_id, warehouse_id)
);
CREATE INDEX stock_adjustments_level_idx ON stock_adjustments (product_id, warehouse_id, created_at);
