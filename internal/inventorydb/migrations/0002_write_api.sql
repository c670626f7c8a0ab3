-- 0002: the write API. Every stock change goes through one of these functions
-- (a warehouse service in any language calls them); each call is one
-- transaction's worth of work, stamps last_change_kind / last_change_ref,
-- bumps version by one on every row it writes and sets updated_at = now().
--
-- Errors (SQLSTATE class SK, stable; callers branch on the code, not the text):
--   SK001 insufficient stock   (reserve, transfer, adjust below 0, commit beyond on_hand)
--   SK002 unknown product
--   SK003 unknown warehouse
--   SK004 unknown reservation
--   SK005 reservation not active (released, committed or expired already)
--   SK006 duplicate reservation id
--   SK007 invalid argument     (NULL, quantity <= 0, zero delta, empty reason, same warehouse)
-- A refused call changes nothing: the exception aborts the whole statement.
--
-- Locking: inventory rows are locked in (product_id, warehouse_id) order and
-- reservations before their inventory row, so concurrent calls never deadlock
-- one another.
--
-- A (product, warehouse) pair whose products and warehouses rows exist but that
-- has no inventory_levels row yet behaves like a row of zeros (with the column
-- defaults for safety_stock, incoming and low_stock_threshold); a successful
-- write inserts it with version 1.

-- _stock_lock_level locks the inventory row of a pair, or, when the pair has no
-- row yet, checks that product and warehouse exist and returns a row of zeros
-- with version 0 ("not stored yet"). Creation of a pair is serialized by a
-- transaction-scoped advisory lock so two first writers cannot both insert.
CREATE FUNCTION _stock_lock_level(p_product_id text, p_warehouse_id text)
RETURNS inventory_levels
LANGUAGE plpgsql AS $$
DECLARE
    l inventory_levels;
BEGIN
    SELECT * INTO l FROM inventory_levels
     WHERE product_id = p_product_id AND warehouse_id = p_warehouse_id
       FOR NO KEY UPDATE;
    IF FOUND THEN
        RETURN l;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM products WHERE product_id = p_product_id) THEN
        RAISE EXCEPTION 'unknown product %', p_product_id USING ERRCODE = 'SK002';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM warehouses WHERE warehouse_id = p_warehouse_id) THEN
        RAISE EXCEPTION 'unknown warehouse %', p_warehouse_id USING ERRCODE = 'SK003';
    END IF;
    -- Two-key form: its key space never overlaps the one-key migration lock.
    PERFORM pg_advisory_xact_lock(1398033201, hashtext(p_product_id || E'\x1f' || p_warehouse_id));
    SELECT * INTO l FROM inventory_levels
     WHERE product_id = p_product_id AND warehouse_id = p_warehouse_id
       FOR NO KEY UPDATE;
    IF FOUND THEN
        RETURN l;
    END IF;
    l.product_id := p_product_id;
    l.warehouse_id := p_warehouse_id;
    l.on_hand := 0;
    l.reserved := 0;
    l.safety_stock := 0; -- the column default; the availability check uses it
    l.incoming := 0;
    l.version := 0;
    RETURN l;
END
$$;

-- _stock_write_level stores the on_hand and reserved of a row obtained from
-- _stock_lock_level, stamping kind and ref and bumping version.
CREATE FUNCTION _stock_write_level(l inventory_levels, p_kind text, p_ref text)
RETURNS inventory_levels
LANGUAGE plpgsql AS $$
BEGIN
    IF l.version = 0 THEN
        INSERT INTO inventory_levels AS t
               (product_id, warehouse_id, on_hand, reserved, version,
                last_change_kind, last_change_ref, updated_at)
        VALUES (l.product_id, l.warehouse_id, l.on_hand, l.reserved, 1,
                p_kind, p_ref, now())
        RETURNING t.* INTO l;
    ELSE
        UPDATE inventory_levels AS t
           SET on_hand = l.on_hand,
               reserved = l.reserved,
               version = t.version + 1,
               last_change_kind = p_kind,
               last_change_ref = p_ref,
               updated_at = now()
         WHERE t.product_id = l.product_id AND t.warehouse_id = l.warehouse_id
        RETURNING t.* INTO l;
    END IF;
    RETURN l;
END
$$;

-- stock_receive books goods in: on_hand += quantity.
CREATE FUNCTION stock_receive(p_product_id text, p_warehouse_id text, p_quantity int, p_ref text)
RETURNS inventory_levels
LANGUAGE plpgsql AS $$
DECLARE
    l inventory_levels;
BEGIN
    IF p_product_id IS NULL OR p_warehouse_id IS NULL OR p_quantity IS NULL OR p_ref IS NULL THEN
        RAISE EXCEPTION 'stock_receive: product_id, warehouse_id, quantity and ref must not be NULL'
            USING ERRCODE = 'SK007';
    END IF;
    IF p_quantity <= 0 THEN
        RAISE EXCEPTION 'stock_receive: quantity must be > 0, got %', p_quantity USING ERRCODE = 'SK007';
    END IF;
    l := _stock_lock_level(p_product_id, p_warehouse_id);
    l.on_hand := l.on_hand + p_quantity;
    RETURN _stock_write_level(l, 'receive', p_ref);
END
$$;

-- stock_adjust corrects on_hand by a signed delta (damage, loss, found stock),
-- journaled with its reason in stock_adjustments. on_hand must stay >= 0, but
-- may fall below reserved: the goods are gone whether or not they were
-- promised, and the negative available it leaves is the oversold signal the
-- pipeline must show, never hide.
CREATE FUNCTION stock_adjust(p_product_id text, p_warehouse_id text, p_delta int, p_reason text, p_ref text)
RETURNS inventory_levels
LANGUAGE plpgsql AS $$
DECLARE
    l inventory_levels;
BEGIN
    IF p_product_id IS NULL OR p_warehouse_id IS NULL OR p_delta IS NULL OR p_reason IS NULL OR p_ref IS NULL THEN
        RAISE EXCEPTION 'stock_adjust: product_id, warehouse_id, delta, reason and ref must not be NULL'
            USING ERRCODE = 'SK007';
    END IF;
    IF p_delta = 0 THEN
        RAISE EXCEPTION 'stock_adjust: delta must not be 0' USING ERRCODE = 'SK007';
    END IF;
    IF btrim(p_reason) = '' THEN
        RAISE EXCEPTION 'stock_adjust: reason must not be empty' USING ERRCODE = 'SK007';
    END IF;
    l := _stock_lock_level(p_product_id, p_warehouse_id);
    IF l.on_hand + p_delta < 0 THEN
        RAISE EXCEPTION 'insufficient stock to adjust % at % by %: on_hand %',
            p_product_id, p_warehouse_id, p_delta, l.on_hand USING ERRCODE = 'SK001';
    END IF;
    l.on_hand := l.on_hand + p_delta;
    l := _stock_write_level(l, 'adjust', p_ref);
    INSERT INTO stock_adjustments (product_id, warehouse_id, delta, reason, ref, on_hand_after)
    VALUES (p_product_id, p_warehouse_id, p_delta, p_reason, p_ref, l.on_hand);
    RETURN l;
END
$$;

-- stock_count sets on_hand to what a stock take found. Like stock_adjust it may
-- leave on_hand below reserved (oversold shows as negative available). A count
-- that confirms the stored figure is still written: "counted at" is news.
CREATE FUNCTION stock_count(p_product_id text, p_warehouse_id text, p_counted int, p_ref text)
RETURNS inventory_levels
LANGUAGE plpgsql AS $$
DECLARE
    l inventory_levels;
BEGIN
    IF p_product_id IS NULL OR p_warehouse_id IS NULL OR p_counted IS NULL OR p_ref IS NULL THEN
        RAISE EXCEPTION 'stock_count: product_id, warehouse_id, counted and ref must not be NULL'
            USING ERRCODE = 'SK007';
    END IF;
    IF p_counted < 0 THEN
        RAISE EXCEPTION 'stock_count: counted must be >= 0, got %', p_counted USING ERRCODE = 'SK007';
    END IF;
    l := _stock_lock_level(p_product_id, p_warehouse_id);
    l.on_hand := p_counted;
    RETURN _stock_write_level(l, 'count', p_ref);
END
$$;

-- stock_transfer moves unreserved on_hand from one warehouse to another in one
-- transaction. Returns the source row, then the destination row. Safety stock
-- may be moved (it is a selling rule, not a physical hold); reserved may not.
CREATE FUNCTION stock_transfer(p_product_id text, p_from_warehouse text, p_to_warehouse text,
                               p_quantity int, p_ref text)
RETURNS SETOF inventory_levels
LANGUAGE plpgsql AS $$
DECLARE
    src inventory_levels;
    dst inventory_levels;
BEGIN
    IF p_product_id IS NULL OR p_from_warehouse IS NULL OR p_to_warehouse IS NULL
       OR p_quantity IS NULL OR p_ref IS NULL THEN
        RAISE EXCEPTION 'stock_transfer: product_id, from_warehouse, to_warehouse, quantity and ref must not be NULL'
            USING ERRCODE = 'SK007';
    END IF;
    IF p_quantity <= 0 THEN
        RAISE EXCEPTION 'stock_transfer: quantity must be > 0, got %', p_quantity USING ERRCODE = 'SK007';
    END IF;
    IF p_from_warehouse = p_to_warehouse THEN
        RAISE EXCEPTION 'stock_transfer: from and to warehouse are both %', p_from_warehouse
            USING ERRCODE = 'SK007';
    END IF;
    -- Fixed lock order (by warehouse_id within the product) so two opposite
    -- transfers cannot deadlock.
    IF p_from_warehouse < p_to_warehouse THEN
        src := _stock_lock_level(p_product_id, p_from_warehouse);
        dst := _stock_lock_level(p_product_id, p_to_warehouse);
    ELSE
        dst := _stock_lock_level(p_product_id, p_to_warehouse);
        src := _stock_lock_level(p_product_id, p_from_warehouse);
    END IF;
    IF src.on_hand - src.reserved < p_quantity THEN
        RAISE EXCEPTION 'insufficient stock to transfer % of % from %: unreserved on_hand %',
            p_quantity, p_product_id, p_from_warehouse, src.on_hand - src.reserved
            USING ERRCODE = 'SK001';
    END IF;
    src.on_hand := src.on_hand - p_quantity;
    dst.on_hand := dst.on_hand + p_quantity;
    src := _stock_write_level(src, 'transfer', p_ref);
    dst := _stock_write_level(dst, 'transfer', p_ref);
    RETURN NEXT src;
    RETURN NEXT dst;
END
$$;

-- stock_reserve holds quantity for an order: reserved += quantity, and a
-- stock_reservations row that release, commit or the expiry sweep ends. It is
-- refused (SK001) when available = on_hand - reserved - safety_stock is short,
-- unless p_allow_backorder; then the reservation is stored with backorder =
-- true and available goes negative. The reservation id is last_change_ref.
CREATE FUNCTION stock_reserve(p_reservation_id text, p_product_id text, p_warehouse_id text,
                              p_quantity int, p_ttl interval DEFAULT '15 minutes',
                              p_allow_backorder boolean DEFAULT false)
RETURNS stock_reservations
LANGUAGE plpgsql AS $$
DECLARE
    l inventory_levels;
    r stock_reservations;
    available int;
BEGIN
    IF p_reservation_id IS NULL OR p_product_id IS NULL OR p_warehouse_id IS NULL
       OR p_quantity IS NULL OR p_ttl IS NULL OR p_allow_backorder IS NULL THEN
        RAISE EXCEPTION 'stock_reserve: reservation_id, product_id, warehouse_id, quantity, ttl and allow_backorder must not be NULL'
            USING ERRCODE = 'SK007';
    END IF;
    IF p_reservation_id = '' THEN
        RAISE EXCEPTION 'stock_reserve: reservation_id must not be empty' USING ERRCODE = 'SK007';
    END IF;
    IF p_quantity <= 0 THEN
        RAISE EXCEPTION 'stock_reserve: quantity must be > 0, got %', p_quantity USING ERRCODE = 'SK007';
    END IF;
    IF p_ttl <= interval '0' THEN
        RAISE EXCEPTION 'stock_reserve: ttl must be > 0, got %', p_ttl USING ERRCODE = 'SK007';
    END IF;
    IF EXISTS (SELECT 1 FROM stock_reservations WHERE reservation_id = p_reservation_id) THEN
        RAISE EXCEPTION 'duplicate reservation %', p_reservation_id USING ERRCODE = 'SK006';
    END IF;
    l := _stock_lock_level(p_product_id, p_warehouse_id);
    available := l.on_hand - l.reserved - l.safety_stock;
    IF available < p_quantity AND NOT p_allow_backorder THEN
        RAISE EXCEPTION 'insufficient stock for % at %: available %, requested %',
            p_product_id, p_warehouse_id, available, p_quantity USING ERRCODE = 'SK001';
    END IF;
    l.reserved := l.reserved + p_quantity;
    -- The level row first: the reservation references it.
    PERFORM _stock_write_level(l, 'reserve', p_reservation_id);
    INSERT INTO stock_reservations (reservation_id, product_id, warehouse_id, quantity, status,
                                    backorder, expires_at, created_at, updated_at)
    VALUES (p_reservation_id, p_product_id, p_warehouse_id, p_quantity, 'active',
            available < p_quantity, now() + p_ttl, now(), now())
    ON CONFLICT (reservation_id) DO NOTHING
    RETURNING * INTO r;
    IF NOT FOUND THEN -- a concurrent call took the id after the check above
        RAISE EXCEPTION 'duplicate reservation %', p_reservation_id USING ERRCODE = 'SK006';
    END IF;
    RETURN r;
END
$$;

-- _stock_end_reservation locks an active reservation and its inventory row,
-- gives the held quantity back (reserved -= quantity; on_hand too when
-- p_ship), and moves the reservation to p_status.
CREATE FUNCTION _stock_end_reservation(p_fn text, p_reservation_id text, p_ref text,
                                       p_status text, p_kind text, p_ship boolean)
RETURNS stock_reservations
LANGUAGE plpgsql AS $$
DECLARE
    l inventory_levels;
    r stock_reservations;
BEGIN
    IF p_reservation_id IS NULL THEN
        RAISE EXCEPTION '%: reservation_id must not be NULL', p_fn USING ERRCODE = 'SK007';
    END IF;
    SELECT * INTO r FROM stock_reservations WHERE reservation_id = p_reservation_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown reservation %', p_reservation_id USING ERRCODE = 'SK004';
    END IF;
    IF r.status <> 'active' THEN
        RAISE EXCEPTION '%: reservation % is %, not active', p_fn, p_reservation_id, r.status
            USING ERRCODE = 'SK005';
    END IF;
    l := _stock_lock_level(r.product_id, r.warehouse_id);
    IF p_ship THEN
        IF l.on_hand < r.quantity THEN
            RAISE EXCEPTION 'insufficient stock to commit reservation % of % % at %: on_hand %',
                p_reservation_id, r.quantity, r.product_id, r.warehouse_id, l.on_hand
                USING ERRCODE = 'SK001';
        END IF;
        l.on_hand := l.on_hand - r.quantity;
    END IF;
    l.reserved := l.reserved - r.quantity;
    PERFORM _stock_write_level(l, p_kind, coalesce(nullif(p_ref, ''), p_reservation_id));
    UPDATE stock_reservations SET status = p_status, updated_at = now()
     WHERE reservation_id = p_reservation_id
    RETURNING * INTO r;
    RETURN r;
END
$$;

-- stock_release cancels an active reservation: reserved -= quantity.
-- last_change_ref is p_ref, or the reservation id when p_ref is NULL or empty.
CREATE FUNCTION stock_release(p_reservation_id text, p_ref text DEFAULT NULL)
RETURNS stock_reservations
LANGUAGE sql AS $$
    SELECT * FROM _stock_end_reservation('stock_release', p_reservation_id, p_ref, 'released', 'release', false);
$$;

-- stock_commit ships an active reservation: on_hand -= quantity and
-- reserved -= quantity. Refused (SK001) if a count or adjustment left less on
-- hand than the reservation holds; release it instead.
CREATE FUNCTION stock_commit(p_reservation_id text, p_ref text DEFAULT NULL)
RETURNS stock_reservations
LANGUAGE sql AS $$
    SELECT * FROM _stock_end_reservation('stock_commit', p_reservation_id, p_ref, 'committed', 'commit', true);
$$;

-- stock_expire is the sweeper: up to p_limit active reservations with
-- expires_at <= p_now become 'expired' and give their quantity back
-- (reserved -= quantity), each as its own row write stamped 'expire' with the
-- reservation id as ref. Reservations locked by a concurrent release or commit
-- are skipped, not waited for. Returns how many expired.
CREATE FUNCTION stock_expire(p_now timestamptz DEFAULT now(), p_limit int DEFAULT 1000)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n int := 0;
BEGIN
    IF p_now IS NULL OR p_limit IS NULL THEN
        RAISE EXCEPTION 'stock_expire: now and limit must not be NULL' USING ERRCODE = 'SK007';
    END IF;
    IF p_limit <= 0 THEN
        RAISE EXCEPTION 'stock_expire: limit must be > 0, got %', p_limit USING ERRCODE = 'SK007';
    END IF;
    -- Visit the due reservations in inventory-row order so the row locks are
    -- taken in the same order as every other write function takes them.
    FOR r IN
        WITH due AS MATERIALIZED (
            SELECT reservation_id, product_id, warehouse_id, quantity
              FROM stock_reservations
             WHERE status = 'active' AND expires_at <= p_now
             ORDER BY expires_at
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        )
        SELECT * FROM due ORDER BY product_id, warehouse_id, reservation_id
    LOOP
        UPDATE inventory_levels
           SET reserved = reserved - r.quantity,
               version = version + 1,
               last_change_kind = 'expire',
               last_change_ref = r.reservation_id,
               updated_at = now()
         WHERE product_id = r.product_id AND warehouse_id = r.warehouse_id;
        UPDATE stock_reservations SET status = 'expired', updated_at = now()
         WHERE reservation_id = r.reservation_id;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
