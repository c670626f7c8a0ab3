-- 0004: least privilege, enforced by the database (docs/security.md).
--
--   stock_writer      the warehouse services: EXECUTE on the write functions,
--                     nothing on any table. The functions run as their owner.
--   stock_cdc         the producer: SELECT on inventory_levels (the published
--                     table) and on its slot ledger; REPLICATION, LOGIN and a
--                     password are an administrator's to give (a migration
--                     may not, and should not, hand out REPLICATION).
--   stock_resnapshot  who may ask the producer for a resnapshot, through
--                     stock_request_resnapshot.
--
-- Roles belong to the cluster, not to a database: they are created here only
-- when missing and only when the migrating role may create roles, NOLOGIN.
-- Where it may not (the plaintext local stack's owner has no CREATEROLE), an
-- administrator creates them and the owner runs SELECT stock_grant_roles()
-- to hand out the grants below; running it again changes nothing.
--
-- The owner keeps every right it had: what connects as the owner (the local
-- stack's tests, make run) works as before.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['stock_writer', 'stock_cdc', 'stock_resnapshot'] LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = r);
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                NULL; -- a migration of another database of the cluster made it just now
            END;
        ELSE
            RAISE NOTICE 'role % is missing and % may not create it: create it, then run SELECT stock_grant_roles()', r, current_user;
        END IF;
    END LOOP;
END
$$;

-- The producer's slot ledger (producer/source/ledger.go, same shape). The
-- producer creates it when missing, which only the owner may; made here, the
-- producer's own role needs no CREATE on the schema.
CREATE TABLE IF NOT EXISTS stock_producer_slots (
    slot_name     text PRIMARY KEY,
    owner         text NOT NULL,
    confirmed_lsn pg_lsn NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- stock_request_resnapshot asks the producer streaming this database to write
-- the current state of the given products again (every product when NULL or
-- empty), the way `producer resnapshot` does: a transactional logical
-- decoding message (producer/change.SignalResnapshot). Through this function
-- a role may ask without being able to emit anything else into the WAL.
-- Returns the message's LSN.
CREATE FUNCTION stock_request_resnapshot(p_product_ids text[] DEFAULT NULL)
RETURNS pg_lsn
LANGUAGE sql AS $$
    SELECT pg_logical_emit_message(true, 'stock.resnapshot',
        CASE WHEN coalesce(cardinality(p_product_ids), 0) = 0 THEN '{}'
             ELSE json_build_object('product_ids', p_product_ids)::text END);
$$;

-- The write API and the resnapshot request run as their owner: a caller needs
-- EXECUTE on the function and no right on any table. The search_path is
-- pinned to this schema, then pg_temp (last, so a caller's temporary objects
-- never shadow ours): without it a caller could put a table or function of
-- its own in front of ours and have it run with the owner's rights.
-- Functions default to EXECUTE for PUBLIC; that is taken away, from the
-- internal helpers too (only the owner's functions call them).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
           AND p.proname IN ('stock_receive', 'stock_adjust', 'stock_count', 'stock_transfer',
                             'stock_reserve', 'stock_release', 'stock_commit', 'stock_expire',
                             'stock_request_resnapshot')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION _stock_lock_level(text, text),
                       _stock_write_level(inventory_levels, text, text),
                       _stock_end_reservation(text, text, text, text, text, boolean)
    FROM PUBLIC;

-- PUBLIC holds nothing on tables by default; said explicitly, so that the
-- schema states who may write the stock.
REVOKE ALL ON products, warehouses, inventory_levels, stock_reservations, stock_adjustments,
              stock_producer_slots, schema_migrations
    FROM PUBLIC;

-- stock_grant_roles gives each role of the header that exists its rights on
-- this schema's objects, and takes from stock_writer any right on the tables
-- and helpers it may have been given by hand. Idempotent. Runs with the
-- caller's rights: only the owner (or a superuser) can grant.
CREATE FUNCTION stock_grant_roles()
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    roles text;
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stock_writer') THEN
        REVOKE ALL ON products, warehouses, inventory_levels, stock_reservations, stock_adjustments,
                      stock_producer_slots
            FROM stock_writer;
        REVOKE ALL ON FUNCTION _stock_lock_level(text, text),
                               _stock_write_level(inventory_levels, text, text),
                               _stock_end_reservation(text, text, text, text, text, boolean)
            FROM stock_writer;
        GRANT EXECUTE ON FUNCTION stock_receive(text, text, int, text),
                                  stock_adjust(text, text, int, text, text),
                                  stock_count(text, text, int, text),
                                  stock_transfer(text, text, text, int, text),
                                  stock_reserve(text, text, text, int, interval, boolean),
                                  stock_release(text, text),
                                  stock_commit(text, text),
                                  stock_expire(timestamptz, int)
            TO stock_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stock_cdc') THEN
        -- The snapshot reads the table, the stream needs nothing more (the
        -- REPLICATION attribute lets it in); the ledger records the slot's owner.
        GRANT SELECT ON inventory_levels TO stock_cdc;
        GRANT SELECT, INSERT, UPDATE ON stock_producer_slots TO stock_cdc;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'stock_resnapshot') THEN
        GRANT EXECUTE ON FUNCTION stock_request_resnapshot(text[]) TO stock_resnapshot;
    END IF;
    -- Everyone may use the public schema (PostgreSQL 15 and later keep
    -- CREATE from them); another schema must be opened to the roles.
    SELECT string_agg(quote_ident(rolname), ', ') INTO roles
      FROM pg_roles WHERE rolname IN ('stock_writer', 'stock_cdc', 'stock_resnapshot');
    IF current_schema() <> 'public' AND roles IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s', current_schema(), roles);
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION stock_grant_roles() SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION stock_grant_roles() FROM PUBLIC;
SELECT stock_grant_roles();

-- The publication the producer reads (its default name, stock_pub). Creating
-- it takes the table's owner and CREATE on the database, which the producer's
-- own role has neither of: the producer then only checks it. Made only in
-- the public schema, the one the producer captures, and only when the
-- migrating role may; otherwise an administrator creates it.
DO $$
BEGIN
    IF current_schema() = 'public'
       AND NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'stock_pub')
       AND has_database_privilege(current_database(), 'CREATE') THEN
        CREATE PUBLICATION stock_pub FOR TABLE public.inventory_levels;
    END IF;
END
$$;
