//! The store suite (`suite/`), run on SQLite and on PostgreSQL.
//!
//! PostgreSQL tests use `postgres://postgres@127.0.0.1:5432/test` (or `FERRY_TEST_PG_URL`),
//! a fresh schema per test, dropped afterwards; they fail when the server is unreachable.

#![allow(clippy::unwrap_used)]

mod suite;

/// Instantiates each named suite function once per backend, cleaning up even on failure.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        store_tests!(@backend sqlite, sqlite, $($name),*);
        store_tests!(@backend postgres, postgres, $($name),*);
    };
    (@backend $module:ident, $fixture:ident, $($name:ident),*) => {
        mod $module {
            use futures_util::FutureExt;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fx = crate::suite::Fixture::$fixture().await;
                    let outcome = std::panic::AssertUnwindSafe(crate::suite::$name(&fx))
                        .catch_unwind()
                        .await;
                    fx.cleanup().await;
                    if let Err(panic) = outcome {
                        std::panic::resume_unwind(panic);
                    }
                }
            )*
        }
    };
}

store_tests!(
    create_and_get,
    tenant_isolation,
    idempotency_key,
    queue_full,
    queue_limit_holds_under_racing_submissions,
    claim_follows_priority_rule,
    priority_encoding_is_stable,
    concurrent_claims_hand_out_each_item_once,
    complete_is_exactly_once,
    lease_expiry_and_rescue,
    heartbeat_extends_leases,
    release_gives_leases_back,
    fail_retries_then_dead_letters,
    cancel_job_stops_queued_items,
    results_page_through_1000_items,
    redrive_requeues_dead_letters,
    sweep_deletes_finished_jobs_after_ttl,
    wait_for_work_wakes_on_create,
    api_keys_are_stored_hashed,
    queue_depths_count_jobs_and_items,
    mixed_workload_settles_every_item,
    tenants_share_claims,
    jobs_of_a_tenant_share_its_part,
    single_item_claims_alternate_between_tenants,
    fairness_keeps_the_priority_rule,
    in_flight_quota_caps_a_tenant,
    queued_quota_refuses_with_a_retry_hint,
    queued_quota_holds_under_racing_submissions,
    overdue_jobs_fail_and_cancel_what_is_queued,
    throughput_is_measured_over_finished_jobs,
);

/// The fairness acceptance test at full size (200,000 items; `scripts/fairness.sh`).
mod full_size {
    use futures_util::FutureExt;

    async fn run(fx: crate::suite::Fixture) {
        let outcome =
            std::panic::AssertUnwindSafe(crate::suite::tenants_share_claims_full_size(&fx))
                .catch_unwind()
                .await;
        fx.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "200,000 items: run by scripts/fairness.sh"]
    async fn sqlite_tenants_share_claims_200k() {
        run(crate::suite::Fixture::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "200,000 items: run by scripts/fairness.sh"]
    async fn postgres_tenants_share_claims_200k() {
        run(crate::suite::Fixture::postgres().await).await;
    }
}

// Two stores on one database only exist for PostgreSQL (SQLite serves one process).
mod postgres_only {
    use futures_util::FutureExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_for_work_wakes_across_connections() {
        let fx = crate::suite::Fixture::postgres().await;
        let outcome =
            std::panic::AssertUnwindSafe(crate::suite::wait_for_work_wakes_across_connections(&fx))
                .catch_unwind()
                .await;
        fx.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

// The SQLite store reads a job, a results page and the queue depths on connections of its
// own, on the caller's thread; they read the file, so another process's writes to it (a
// `ferry worker` beside `ferry serve --no-worker`) show at once.
mod sqlite_shared_file {
    use ferry_store::{JobStatus, Priority, QueueDepth, SqliteStore, Store};
    use serde_json::json;

    /// Unfinished jobs, queued and in-flight items of the medium priority.
    fn medium(depths: Vec<QueueDepth>) -> (u64, u64, u64) {
        let d = depths
            .into_iter()
            .find(|d| d.priority == Priority::Medium)
            .unwrap();
        (d.unfinished_jobs, d.queued_items, d.in_flight_items)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_see_another_stores_writes_at_once() {
        let dir = std::env::temp_dir().join(format!("ferry-store-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let api = SqliteStore::open(&path).await.unwrap();
        let worker = SqliteStore::open(&path).await.unwrap();

        let job = api
            .create_job(crate::suite::new_job("t", Priority::Medium, 3))
            .await
            .unwrap();
        assert_eq!(medium(api.queue_depths().await.unwrap()), (1, 3, 0));
        // Read once before the other store writes, so the reader has pages to refresh.
        assert_eq!(
            api.job("t", &job.id).await.unwrap().unwrap().status,
            JobStatus::Pending
        );

        let claimed = worker.claim("w", 10, crate::suite::LEASE).await.unwrap();
        assert_eq!(claimed.len(), 3);
        assert_eq!(medium(api.queue_depths().await.unwrap()), (1, 0, 3));
        let first = vec![(claimed[0].item_id, json!({"n": 0}))];
        assert_eq!(worker.complete("w", first).await.unwrap(), 1);
        let seen = api.job("t", &job.id).await.unwrap().unwrap();
        assert_eq!((seen.status, seen.succeeded), (JobStatus::Processing, 1));

        let rest = claimed[1..]
            .iter()
            .map(|c| (c.item_id, json!({"n": c.key})))
            .collect();
        assert_eq!(worker.complete("w", rest).await.unwrap(), 2);
        let seen = api.job("t", &job.id).await.unwrap().unwrap();
        assert_eq!((seen.status, seen.succeeded), (JobStatus::Completed, 3));
        let page = api.results("t", &job.id, None, 10).await.unwrap().unwrap();
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.items[0].result, Some(json!({"n": 0})));
        assert!(page.items.iter().all(|r| r.result.is_some()));
        assert_eq!(medium(api.queue_depths().await.unwrap()), (0, 0, 0));
        // Another tenant's job reads as absent.
        assert_eq!(api.job("u", &job.id).await.unwrap(), None);
        assert!(api.results("u", &job.id, None, 10).await.unwrap().is_none());

        drop((api, worker));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
