//! API keys: which tenant a request acts for.
//!
//! When the service has keys configured ([`AppState::auth_required`]), every route but
//! `/healthz` and `/readyz` needs a live key, sent as `Authorization: Bearer <key>` or
//! `X-API-Key: <key>`; a missing key is 401, an unknown or revoked one 401 as well (the two
//! are told apart in the detail). The key's tenant is put into the request as a [`Tenant`],
//! and every handler reads the store through it, so a tenant sees and touches only its own
//! jobs: another tenant's job id answers 404, exactly as an id that does not exist.
//!
//! Without keys every request acts for the tenant `""`, and `ferry serve` binds to loopback
//! only.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{AppState, Problem};

/// The tenant a request acts for (`""` on a service without API keys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tenant(pub String);

impl Tenant {
    /// The tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware always inserts one; a route outside it acts for the open tenant.
        Ok(parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The key a request presents, if any.
fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, key) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(key.trim())
            .filter(|k| !k.is_empty());
    }
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
}

/// Middleware: resolves the request's [`Tenant`] from its API key, or rejects it.
pub(super) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Problem> {
    let (mut parts, body) = request.into_parts();
    let tenant = if state.auth_required {
        let key = presented_key(&parts).ok_or_else(|| {
            unauthorized(
                "this service requires an API key: send `Authorization: Bearer <key>` or \
                 `X-API-Key: <key>`",
            )
        })?;
        let tenant = state
            .store
            .tenant_for_key(key)
            .await?
            .ok_or_else(|| unauthorized("the API key is unknown or revoked"))?;
        Tenant(tenant)
    } else {
        Tenant::default()
    };
    parts.extensions.insert(tenant);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;

    fn parts(name: &str, value: &str) -> Parts {
        HttpRequest::builder()
            .header(name, value)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        assert_eq!(
            presented_key(&parts("authorization", "Bearer abc")),
            Some("abc")
        );
        assert_eq!(
            presented_key(&parts("authorization", "bearer  abc ")),
            Some("abc")
        );
        assert_eq!(presented_key(&parts("authorization", "Basic abc")), None);
        assert_eq!(presented_key(&parts("authorization", "Bearer ")), None);
        assert_eq!(presented_key(&parts("x-api-key", " k1 ")), Some("k1"));
        assert_eq!(presented_key(&parts("x-other", "k1")), None);
    }
}
