-- Ferry store, SQLite, version 4: queue depths from the jobs' counters rather than by
-- counting items. Unfinished jobs are found by `jobs_unfinished`; this index finds the
-- cancelled jobs that still have items in flight (their workers have yet to report them).

CREATE INDEX jobs_cancelled_in_flight ON jobs (priority)
    WHERE status = 'cancelled' AND total > succeeded + failed + cancelled + queued;
