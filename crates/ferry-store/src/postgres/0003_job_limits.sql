-- Ferry store, PostgreSQL, version 3: a job's own limits (the KubeSentiment-compatible batch
-- API's `timeout_seconds` and `max_batch_size`), and the index the deadline check reads.

ALTER TABLE jobs ADD COLUMN timeout_seconds DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN max_batch_size BIGINT;
CREATE INDEX jobs_deadline ON jobs (created_at)
    WHERE timeout_seconds IS NOT NULL AND status IN ('pending', 'processing');
