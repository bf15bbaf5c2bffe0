//! Per-tenant request rate limits (governor's keyed GCRA limiter).
//!
//! With [`AppState::tenant_rate`] set, each tenant may make that many requests per second,
//! with bursts of the same size; more is 429 with `Retry-After` (whole seconds, at least 1)
//! and a problem+json body naming the limit. The limit applies to every route behind the
//! API-key check; health, `/openapi.json` and the dashboard page are not limited. Without
//! API keys all requests share the tenant `""`, so the limit is service-wide.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{AppState, Problem, Tenant};

/// A rate limiter per tenant: `per_second` requests a second, bursts of as many.
#[derive(Debug, Clone)]
pub struct TenantRate {
    per_second: NonZeroU32,
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl TenantRate {
    /// `per_second` requests a second per tenant.
    pub fn new(per_second: NonZeroU32) -> Self {
        TenantRate {
            per_second,
            limiter: Arc::new(RateLimiter::keyed(Quota::per_second(per_second))),
        }
    }

    /// `Ok` if `tenant` may make a request now, else the seconds to wait.
    fn check(&self, tenant: &str) -> Result<(), u64> {
        self.limiter
            .check_key(&tenant.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                wait.as_secs_f64().ceil().max(1.0) as u64
            })
    }
}

/// Middleware (inside the API-key check): applies the tenant's rate limit.
pub(super) async fn limit(
    State(state): State<AppState>,
    tenant: Tenant,
    request: Request,
    next: Next,
) -> Result<Response, Problem> {
    if let Some(rate) = &state.tenant_rate {
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
        let rate = TenantRate::new(NonZeroU32::new(2).unwrap());
        assert!(rate.check("a").is_ok());
        assert!(rate.check("a").is_ok());
        let wait = rate.check("a").unwrap_err();
        assert!(wait >= 1, "{wait}");
        assert!(
            rate.check("b").is_ok(),
            "another tenant is not limited by a"
        );
    }
}
