//! A job's own limits: `timeout_seconds` (failed at the deadline, queued items cancelled,
//! items in flight finish as reported) and `max_batch_size` (handed to the claimer), and the
//! measured throughput.

use std::time::Duration;

use ferry_store::{FailOutcome, JobLimits, JobStatus, Priority};
use serde_json::json;

use super::fixture::T0;
use super::{ids, new_job, Fixture, LEASE};

pub(crate) async fn overdue_jobs_fail_and_cancel_what_is_queued(fx: &Fixture) {
    let s = &fx.store;
    let mut timed = new_job("t", Priority::Medium, 10);
    timed.limits = JobLimits {
        timeout_seconds: Some(1.5),
        max_batch_size: Some(7),
    };
    let timed = s.create_job(timed).await.unwrap();
    assert_eq!(timed.limits.timeout_seconds, Some(1.5));
    let claimed = s.claim("w", 3, LEASE).await.unwrap();
    assert!(claimed
        .iter()
        .all(|c| c.max_batch_size == Some(7) && c.job_id == timed.id));
    // Created after that claim: fair claims would otherwise share it between the two jobs.
    let untimed = s
        .create_job(new_job("t", Priority::Medium, 2))
        .await
        .unwrap();
    let c = ids(&claimed);

    fx.clock.advance(Duration::from_secs(1));
    assert!(s.expire_overdue().await.unwrap().is_empty(), "not yet due");
    fx.clock.advance(Duration::from_millis(500));
    let expired = s.expire_overdue().await.unwrap();
    assert_eq!(expired.len(), 1);
    let job = &expired[0];
    assert_eq!(job.id, timed.id);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.cancelled, 7);
    assert_eq!(job.completed_at, Some(T0 + 1.5));
    let error = job.error.clone().unwrap();
    assert!(error.contains("timeout_seconds (1.5 s)"), "{error}");
    assert!(s.expire_overdue().await.unwrap().is_empty(), "expired once");
    assert_eq!(
        fx.miscounted_jobs().await,
        0,
        "queued counters after expiry"
    );

    // In flight: a completed item keeps its result; a failed or released one is cancelled;
    // the job stays failed with its reason.
    assert_eq!(s.complete("w", vec![(c[0], json!("ok"))]).await.unwrap(), 1);
    assert_eq!(
        s.fail("w", c[1], "x", None, false).await.unwrap(),
        FailOutcome::Cancelled
    );
    assert_eq!(s.release("w").await.unwrap(), 1);
    let j = s.job("t", &timed.id).await.unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(j.error.as_deref(), Some(error.as_str()));
    assert_eq!((j.succeeded, j.failed, j.cancelled), (1, 0, 9));
    // Cancelling it now changes nothing; the other job is untouched and still claimable.
    let again = s.cancel_job("t", &timed.id).await.unwrap().unwrap();
    assert_eq!(again.status, JobStatus::Failed);
    let rest = s.claim("w2", 10, LEASE).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest
        .iter()
        .all(|c| c.job_id == untimed.id && c.max_batch_size.is_none()));
}

pub(crate) async fn throughput_is_measured_over_finished_jobs(fx: &Fixture) {
    let s = &fx.store;
    assert_eq!(s.throughput(Duration::from_secs(60)).await.unwrap(), None);
    let job = s
        .create_job(new_job("t", Priority::Medium, 10))
        .await
        .unwrap();
    let c = s.claim("w", 10, LEASE).await.unwrap();
    fx.clock.advance(Duration::from_secs(4));
    let results = c.iter().map(|c| (c.item_id, json!(1))).collect();
    assert_eq!(s.complete("w", results).await.unwrap(), 10);
    assert_eq!(
        s.job("t", &job.id).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
    // 10 items between the first claim and the last result, 4 s apart.
    let rate = s
        .throughput(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!((rate - 2.5).abs() < 1e-9, "{rate}");
    fx.clock.advance(Duration::from_secs(120));
    assert_eq!(s.throughput(Duration::from_secs(60)).await.unwrap(), None);
}
