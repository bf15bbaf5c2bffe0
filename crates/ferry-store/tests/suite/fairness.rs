//! Fair claims between tenants and between one tenant's jobs, and the per-tenant quotas.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use ferry_store::{ClaimedItem, Error, JobStatus, NewJob, Priority, Store};
use serde_json::json;

use super::{new_job, submit_racing, Fixture, LEASE};

/// Claims `size` items and completes them all; returns what was claimed.
async fn claim_and_complete(s: &dyn Store, size: usize) -> Vec<ClaimedItem> {
    let claimed = s.claim("w", size, LEASE).await.unwrap();
    let done = claimed.iter().map(|c| (c.item_id, json!(1))).collect();
    s.complete("w", done).await.unwrap();
    claimed
}

/// A job of `n` small items (cheaper to build than `new_job`'s for the large backlogs).
fn plain_job(tenant: &str, n: usize) -> NewJob {
    NewJob {
        items: (0..n)
            .map(|i| ferry_store::NewItem {
                key: i.to_string(),
                payload: json!(i),
            })
            .collect(),
        ..new_job(tenant, Priority::Medium, 0)
    }
}

/// Tenant `a` queues `big` items, then tenant `b` 100; a worker claims and completes 100 at
/// a time. Returns `a`'s backlog (items not yet succeeded) when `b`'s job completed, and the
/// claims it took.
pub(crate) async fn small_tenant_finishes_beside_a_big_backlog(
    s: &dyn Store,
    big: usize,
) -> (u64, usize) {
    let started = Instant::now();
    let a = s.create_job(plain_job("a", big)).await.unwrap();
    let submitted = started.elapsed();
    let b = s.create_job(plain_job("b", 100)).await.unwrap();
    let mut claims = 0;
    loop {
        let got = claim_and_complete(s, 100).await;
        assert!(!got.is_empty(), "b's job never completed");
        claims += 1;
        let job = s.job("b", &b.id).await.unwrap().unwrap();
        if job.status == JobStatus::Completed {
            break;
        }
    }
    let a = s.job("a", &a.id).await.unwrap().unwrap();
    eprintln!(
        "{big} items of tenant a submitted in {submitted:?}; tenant b's 100 completed after \
         {claims} claims of 100, a's backlog then {}; {:?} in all",
        a.total - a.succeeded,
        started.elapsed()
    );
    (a.total - a.succeeded, claims)
}

/// The acceptance shape at CI size (20,000 items; `scripts/fairness.sh` runs 200,000): the
/// small tenant's job completes while the big one still has over three quarters of its
/// backlog.
pub(crate) async fn tenants_share_claims(fx: &Fixture) {
    let big = 20_000;
    let (backlog, claims) =
        small_tenant_finishes_beside_a_big_backlog(fx.store.as_ref(), big).await;
    assert_eq!(claims, 2, "100-item claims split 50 : 50");
    assert_eq!(backlog, big as u64 - 100);
    assert!(backlog > big as u64 * 3 / 4);
    assert_eq!(fx.miscounted_jobs().await, 0);
}

/// The full size of the acceptance test: 200,000 items. Ignored in CI (run by
/// `scripts/fairness.sh`).
pub(crate) async fn tenants_share_claims_full_size(fx: &Fixture) {
    let (backlog, _) = small_tenant_finishes_beside_a_big_backlog(fx.store.as_ref(), 200_000).await;
    assert!(backlog > 150_000, "{backlog}");
}

pub(crate) async fn jobs_of_a_tenant_share_its_part(fx: &Fixture) {
    let s = fx.store.as_ref();
    let a1 = s.create_job(plain_job("a", 1000)).await.unwrap();
    let a2 = s.create_job(plain_job("a", 10)).await.unwrap();
    let b = s.create_job(plain_job("b", 10)).await.unwrap();
    let c = s.claim("w", 20, LEASE).await.unwrap();
    let of = |id| c.iter().filter(|c| &c.job_id == id).count();
    assert_eq!((of(&a1.id), of(&a2.id), of(&b.id)), (5, 5, 10));
    // Within a job, oldest first.
    let keys: Vec<&str> = c
        .iter()
        .filter(|c| c.job_id == a1.id)
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(keys, ["0", "1", "2", "3", "4"]);
    assert_eq!(fx.miscounted_jobs().await, 0);
}

/// Claims of one item alternate between tenants, however many jobs one of them has (a
/// tenant's turn outlives its jobs).
pub(crate) async fn single_item_claims_alternate_between_tenants(fx: &Fixture) {
    let s = fx.store.as_ref();
    for _ in 0..4 {
        s.create_job(plain_job("a", 1)).await.unwrap();
    }
    s.create_job(plain_job("b", 4)).await.unwrap();
    let mut order = String::new();
    for _ in 0..8 {
        let c = claim_and_complete(s, 1).await;
        assert_eq!(c.len(), 1);
        order.push_str(&c[0].tenant);
    }
    assert!(order == "abababab" || order == "babababa", "{order}");
    assert!(s.claim("w", 1, LEASE).await.unwrap().is_empty());
}

/// Fairness works within a priority; the priority rule still splits between them.
pub(crate) async fn fairness_keeps_the_priority_rule(fx: &Fixture) {
    let s = fx.store.as_ref();
    for (tenant, p) in [
        ("a", Priority::High),
        ("b", Priority::High),
        ("a", Priority::Low),
    ] {
        s.create_job(new_job(tenant, p, 100)).await.unwrap();
    }
    let c = s.claim("w", 70, LEASE).await.unwrap();
    let n = |t: &str, p| {
        c.iter()
            .filter(|c| c.tenant == t && c.priority == p)
            .count()
    };
    // 4 : 2 : 1 of 70 is 40 / 20 / 10; medium's 20 go to high, then low.
    assert_eq!(n("a", Priority::High) + n("b", Priority::High), 60);
    assert_eq!(n("a", Priority::High), 30);
    assert_eq!(n("a", Priority::Low), 10);
}

pub(crate) async fn in_flight_quota_caps_a_tenant(fx: &Fixture) {
    let s = fx
        .reopen(|o| o.tenant_max_in_flight(NonZeroU64::new(10).unwrap()))
        .await;
    s.create_job(plain_job("a", 100)).await.unwrap();
    s.create_job(plain_job("b", 5)).await.unwrap();
    let c = s.claim("w", 50, LEASE).await.unwrap();
    let n = |c: &[ClaimedItem], t: &str| c.iter().filter(|c| c.tenant == t).count();
    assert_eq!((n(&c, "a"), n(&c, "b")), (10, 5));
    assert!(
        s.claim("w", 50, LEASE).await.unwrap().is_empty(),
        "a is at its quota, b has nothing left"
    );
    // Four of a's items end: four more may go out.
    let done = c
        .iter()
        .filter(|c| c.tenant == "a")
        .take(4)
        .map(|c| (c.item_id, json!(1)))
        .collect();
    // Drain the wake-ups the submissions left, then: finishing items wakes idle workers.
    while s.wait_for_work(Duration::ZERO).await.unwrap() {}
    s.complete("w", done).await.unwrap();
    assert!(
        s.wait_for_work(Duration::from_secs(5)).await.unwrap(),
        "finishing items under a quota wakes waiting workers"
    );
    assert_eq!(s.claim("w", 50, LEASE).await.unwrap().len(), 4);
}

pub(crate) async fn queued_quota_refuses_with_a_retry_hint(fx: &Fixture) {
    let s = fx
        .reopen(|o| o.tenant_max_queued(NonZeroU64::new(100).unwrap()))
        .await;
    s.create_job(plain_job("a", 60)).await.unwrap();
    s.create_job(plain_job("a", 40)).await.unwrap();
    match s.create_job(plain_job("a", 1)).await {
        Err(Error::TenantQuota {
            tenant,
            limit,
            queued,
            more,
            retry_after_secs,
        }) => {
            assert_eq!((tenant.as_str(), limit, queued, more), ("a", 100, 100, 1));
            assert_eq!(retry_after_secs, 60, "nothing claimed yet");
        }
        other => panic!("expected TenantQuota, got {other:?}"),
    }
    // Another tenant has its own quota; a job larger than the quota is invalid, not 429.
    s.create_job(plain_job("b", 100)).await.unwrap();
    assert!(matches!(
        s.create_job(plain_job("c", 101)).await,
        Err(Error::InvalidJob { .. })
    ));
    // 60 claimed (30 of a's) over 10 s: a's items go out at 3 a second.
    let c = s.claim("w", 60, LEASE).await.unwrap();
    assert_eq!(c.iter().filter(|c| c.tenant == "a").count(), 30);
    fx.clock.advance(Duration::from_secs(10));
    s.create_job(plain_job("a", 30)).await.unwrap();
    match s.create_job(plain_job("a", 20)).await {
        Err(Error::TenantQuota {
            queued,
            retry_after_secs,
            ..
        }) => {
            assert_eq!(queued, 100);
            assert_eq!(retry_after_secs, 7, "20 over the quota at 3 a second");
        }
        other => panic!("expected TenantQuota, got {other:?}"),
    }
    assert_eq!(fx.miscounted_jobs().await, 0);
}

/// Racing submissions of one tenant: its queued-items quota admits exactly what fits.
pub(crate) async fn queued_quota_holds_under_racing_submissions(fx: &Fixture) {
    let s = fx
        .reopen(|o| o.tenant_max_queued(NonZeroU64::new(100).unwrap()))
        .await;
    let (mut admitted, mut refused) = (0, 0);
    for submitted in submit_racing(&s, 10, plain_job("a", 30)).await {
        match submitted {
            Ok(_) => admitted += 1,
            Err(Error::TenantQuota { limit, more, .. }) => {
                assert_eq!((limit, more), (100, 30));
                refused += 1;
            }
            Err(other) => panic!("expected a job or TenantQuota, got {other:?}"),
        }
    }
    assert_eq!((admitted, refused), (3, 7), "three jobs of 30 fit in 100");
    assert_eq!(fx.raw.scalar("SELECT COUNT(*) FROM items").await, 90);
    assert_eq!(fx.miscounted_jobs().await, 0);
}
