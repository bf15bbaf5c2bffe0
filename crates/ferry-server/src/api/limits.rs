//! Per-tenant limits: request rates (governor's keyed GCRA limiter, applied here) and
//! quotas on items ([`TenantQuotas`], enforced by the store).
//!
//! Quotas: with `max_queued`, a submission that would take its tenant past that many queued
//! items is 429 with `Retry-After` (from how fast the tenant's items are being claimed) and
//! a problem+json body naming the quota; a job larger than the quota on its own is 422.
//! With `max_in_flight`, claims hand a tenant no more items while it has that many in
//! flight (other tenants are served meanwhile); nothing is refused.
//!
//! With `AppState::tenant_rate` set, each tenant may make that many requests per second,
//! with bursts of the same size; more is 429 with `Retry-After` (whole seconds, at least 1)
//! and a problem+json body naming the limit. The limit applies to every route behind the
//! API-key check; health, `/openapi.json` and the dashboard page are not limited. Without
//! API keys all requests share the tenant `""`, so the limit is service-wide.

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::clock::ApiClock;
use super::problem::Problem;
use super::tenant::Tenant;

/// Per-tenant quotas on items; the store enforces them (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantQuotas {
    /// Most queued (not yet claimed) items per tenant (default: no limit).
    pub max_queued: Option<NonZeroU64>,
    /// Most items per tenant in flight at once (default: no limit). Every process that
    /// claims (`ferry serve`'s worker, each `ferry worker`) must be given the same.
    pub max_in_flight: Option<NonZeroU64>,
}

impl TenantQuotas {
    /// `options` with these quotas set.
    pub fn apply(&self, mut options: ferry_store::StoreOptions) -> ferry_store::StoreOptions {
        if let Some(n) = self.max_queued {
            options = options.tenant_max_queued(n);
        }
        if let Some(n) = self.max_in_flight {
            options = options.tenant_max_in_flight(n);
        }
        options
    }
}

/// A rate limiter per tenant: `per_second` requests a second, bursts of as many.
#[derive(Debug, Clone)]
pub struct TenantRate {
    per_second: NonZeroU32,
    clock: ApiClock,
    limiter: Arc<RateLimiter<String, HashMapStateStore<String>, ApiClock, NoOpMiddleware<Nanos>>>,
}

impl TenantRate {
    /// `per_second` requests a second per tenant, on the system's clock.
    pub fn new(per_second: NonZeroU32) -> Self {
        Self::with_clock(per_second, ApiClock::system())
    }

    /// `per_second` requests a second per tenant, timed by `clock` (a manual one in tests).
    pub fn with_clock(per_second: NonZeroU32, clock: ApiClock) -> Self {
        TenantRate {
            per_second,
            limiter: Arc::new(RateLimiter::hashmap_with_clock(
                Quota::per_second(per_second),
                clock.clone(),
            )),
            clock,
        }
    }

    /// `Ok` if `tenant` may make a request now, else the seconds to wait.
    fn check(&self, tenant: &str) -> Result<(), u64> {
        self.limiter
            .check_key(&tenant.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                wait.as_secs_f64().ceil().max(1.0) as u64
            })
    }
}

/// Middleware (inside the API-key check): applies the tenant's rate limit, if any.
pub(super) async fn limit(
    State(rate): State<Option<TenantRate>>,
    tenant: Tenant,
    request: Request,
    next: Next,
) -> Result<Response, Problem> {
    if let Some(rate) = &rate {
        if let Err(secs) = rate.check(tenant.as_str()) {
            return Err(Problem {
                retry_after: Some(secs),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Rate Limited",
                    format!(
                        "this tenant may make {} requests per second; retry in {secs} s",
                        rate.per_second
                    ),
                )
            });
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_has_its_own_budget() {
        let clock = ApiClock::manual();
        let rate = TenantRate::with_clock(NonZeroU32::new(2).unwrap(), clock.clone());
        assert!(rate.check("a").is_ok());
        assert!(rate.check("a").is_ok());
        let wait = rate.check("a").unwrap_err();
        assert_eq!(wait, 1, "half a second, rounded up");
        assert!(
            rate.check("b").is_ok(),
            "another tenant is not limited by a"
        );
        // Half a second later, one more request fits again (2 a second).
        clock.advance(std::time::Duration::from_millis(500));
        assert!(rate.check("a").is_ok());
        assert!(rate.check("a").is_err());
    }
}
