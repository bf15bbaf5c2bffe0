-- Ferry store, PostgreSQL, version 5: a claim's update of an item is a HOT update. No index
-- of `items` depends on a column a claim changes (`state`, the lease columns, `attempts`),
-- and its pages keep room for the new row versions, so leasing an item writes its row once
-- on the same page and no index entry. Claims find queued items through `items_active`,
-- whose predicate (`active`) a claim leaves unchanged; leases are found through `leases`.

ALTER TABLE items SET (fillfactor = 50);
ALTER TABLE items ADD COLUMN active BOOLEAN
    GENERATED ALWAYS AS (state IN ('queued', 'leased')) STORED;
DROP INDEX items_claimable;
DROP INDEX items_lease_owner;
DROP INDEX items_lease_until;
CREATE INDEX items_active ON items (job_id, id) WHERE active;

-- The leases each claim granted: its worker, its deadline and its items, one row per claim
-- rather than one per item. Lease renewals and take-backs read the items through these
-- rows and check each item's own row, which stays the truth: an item ended, queued again or
-- leased anew since its claim is skipped. A row none of whose items is still leased under
-- it is deleted by its worker's next renewal or by a rescue. No index: the table holds the
-- claims in flight, and every statement reads it by owner or deadline.
CREATE TABLE leases (
    owner TEXT NOT NULL,
    until DOUBLE PRECISION NOT NULL,
    items BIGINT[] NOT NULL
);
INSERT INTO leases (owner, until, items)
    SELECT lease_owner, lease_until, array_agg(id) FROM items WHERE state = 'leased'
    GROUP BY lease_owner, lease_until;
