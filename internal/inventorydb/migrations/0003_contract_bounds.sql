-- Bounds of the Kafka contract (schemas/bounds.go). Every reader of the topics
-- refuses a value past them as a record the producer did not write, so the
-- source refuses to hold one: a write past them fails with a check violation
-- and changes nothing, instead of becoming a record every consumer drops.
ALTER TABLE products
    ADD CONSTRAINT products_id_bounds
    CHECK (octet_length(product_id) <= 256 AND product_id !~ '[[:cntrl:]]');
ALTER TABLE warehouses
    ADD CONSTRAINT warehouses_id_bounds
    CHECK (octet_length(warehouse_id) <= 256 AND warehouse_id !~ '[[:cntrl:]]');
ALTER TABLE inventory_levels
    ADD CONSTRAINT inventory_levels_change_bounds
    CHECK (octet_length(last_change_kind) <= 1024 AND octet_length(last_change_ref) <= 1024);
