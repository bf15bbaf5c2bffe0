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
