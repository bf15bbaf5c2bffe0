-- Ferry store, SQLite, version 3: a job's own limits (the KubeSentiment-compatible batch API's
-- `timeout_seconds` and `max_batch_size`), and the index the deadline check reads.

ALTER TABLE jobs ADD COLUMN timeout_seconds REAL;
ALTER TABLE jobs ADD COLUMN max_batch_size INTEGER;
CREATE INDEX jobs_deadline ON jobs (created_at)
    WHERE timeout_seconds IS NOT NULL AND status IN ('pending', 'processing');
