-- Ferry store, PostgreSQL, version 1. Times are DOUBLE PRECISION seconds since the Unix epoch;
-- JSON is `json` (kept as written: key order is preserved, unlike jsonb).

CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    handler TEXT NOT NULL,
    params JSON NOT NULL,
    priority BIGINT NOT NULL CHECK (priority IN (0, 1, 2)),
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    idempotency_key TEXT,
    total BIGINT NOT NULL,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    cancelled BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    completed_at DOUBLE PRECISION,
    error TEXT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_tenant ON jobs (tenant, seq);
CREATE INDEX jobs_unfinished ON jobs (priority) WHERE status IN ('pending', 'processing');
CREATE INDEX jobs_finished ON jobs (completed_at)
    WHERE status IN ('completed', 'failed', 'cancelled');

CREATE TABLE items (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    payload JSON NOT NULL,
    priority BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'done', 'dead', 'cancelled')),
    attempts BIGINT NOT NULL DEFAULT 0,
    available_at DOUBLE PRECISION NOT NULL,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    last_error TEXT,
    UNIQUE (job_id, key)
);
CREATE INDEX items_job ON items (job_id, id);
CREATE INDEX items_queued ON items (priority, id) WHERE state = 'queued';
CREATE INDEX items_lease_owner ON items (lease_owner) WHERE state = 'leased';
CREATE INDEX items_lease_until ON items (lease_until) WHERE state = 'leased';

-- One result per item, ever: the primary key is the exactly-once guarantee's backstop.
CREATE TABLE results (
    item_id BIGINT PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,
    result JSON NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE dead_letters (
    item_id BIGINT PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,
    tenant TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    dead_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant, item_id);

-- Only the SHA-256 of a key is stored.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
