-- Ferry store, SQLite, version 2: fair claims. Each job counts its queued items and
-- remembers the claim that last served it (a claim number, not a time); claims pick jobs
-- from the small set with queued items, then items of each job oldest first.

ALTER TABLE jobs ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN served INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET queued =
    (SELECT COUNT(*) FROM items i WHERE i.job_id = jobs.id AND i.state = 'queued');
CREATE INDEX jobs_claimable ON jobs (priority) WHERE queued > 0;
CREATE INDEX jobs_tenant_unfinished ON jobs (tenant)
    WHERE status IN ('pending', 'processing');

DROP INDEX items_queued;
CREATE INDEX items_claimable ON items (job_id, id) WHERE state = 'queued';

-- The claim that last served each tenant, so rotation between tenants survives the end of
-- their jobs (a tenant is not "new" again because its last job finished).
CREATE TABLE tenant_turns (
    tenant TEXT PRIMARY KEY,
    served INTEGER NOT NULL
);
