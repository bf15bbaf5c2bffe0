-- Ferry store, PostgreSQL, version 5: a claim's update of an item is a HOT update. No index
-- of `items` depends on a column a claim changes (`state`, the lease columns, `attempts`),
-- and its pages keep room for the new row versions, so leasing an item writes its row once
-- on the same page and no index entry. Claims find queued items through `items_active`,
-- whose predicate (`active`) a claim leaves unchanged; leases are found through `leases`,
-- the items in flight (owner and deadline, as on the item row, which stays the truth).

ALTER TABLE items SET (fillfactor = 50);
ALTER TABLE items ADD COLUMN active BOOLEAN
    GENERATED ALWAYS AS (state IN ('queued', 'leased')) STORED;
DROP INDEX items_claimable;
DROP INDEX items_lease_owner;
DROP INDEX items_lease_until;
CREATE INDEX items_active ON items (job_id, id) WHERE active;

-- Rows of items that may be leased, read by lease renewals and take-backs (a scan of the
-- items in flight). No foreign key: a row whose item is no longer leased under it is
-- skipped, and deleted by the next rescue.
CREATE TABLE leases (
    item_id BIGINT PRIMARY KEY,
    owner TEXT NOT NULL,
    until DOUBLE PRECISION NOT NULL
);
INSERT INTO leases (item_id, owner, until)
    SELECT id, lease_owner, lease_until FROM items WHERE state = 'leased';
