//! API keys: which tenant a request acts for.
//!
//! When the service has keys configured ([`AppState::auth_required`] at start, or a key
//! created while it runs: see [`super::key_watch`]), every route but `/healthz` and `/readyz`
//! needs a live key, sent as `Authorization: Bearer <key>` or
//! `X-API-Key: <key>`; a missing key is 401, an unknown or revoked one 401 as well (the two
//! are told apart in the detail). The key's tenant is put into the request as a [`Tenant`],
//! and every handler reads the store through it, so a tenant sees and touches only its own
//! jobs: another tenant's job id answers 404, exactly as an id that does not exist.
//!
//! Browsers cannot set headers on a WebSocket or an `EventSource`, so a WebSocket upgrade
//! or an SSE request (`Accept: text/event-stream`) may instead carry the key as the query
//! parameter `api_key`; other requests may not (a key in a URL ends up in logs).
//!
//! Without keys every request acts for the tenant `""`, and `ferry serve` binds to loopback
//! only.

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::problem::Problem;
use super::state::AppState;
use super::tenant::Tenant;

/// The key a request presents, if any.
fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, key) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(key.trim())
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
    }
    if let Some(key) = parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        return Some(key.to_owned());
    }
    if is_stream(parts) {
        return url_key(parts.uri.query()?);
    }
    None
}

/// Whether the request opens a WebSocket or an SSE stream (which browsers open without
/// custom headers).
fn is_stream(parts: &Parts) -> bool {
    let has = |name: header::HeaderName, needle: &str| {
        parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains(needle))
    };
    has(header::UPGRADE, "websocket") || has(header::ACCEPT, "text/event-stream")
}

/// The `api_key` query parameter, percent-decoded.
fn url_key(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "api_key" && !value.is_empty()).then(|| percent_decode(value))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    let required = state.auth_required
        || (state.key_watch)
            .required(state.store.as_ref(), &state.clock)
            .await?;
    let tenant = if required {
        let key = presented_key(&parts).ok_or_else(|| {
            unauthorized(
                "this service requires an API key: send `Authorization: Bearer <key>` or \
                 `X-API-Key: <key>`",
            )
        })?;
        let tenant = state
            .store
            .tenant_for_key(&key)
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
        request("/", name, value)
    }

    fn request(uri: &str, name: &str, value: &str) -> Parts {
        HttpRequest::builder()
            .uri(uri)
            .header(name, value)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn key(p: &Parts) -> Option<String> {
        presented_key(p)
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        assert_eq!(
            key(&parts("authorization", "Bearer abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(
            key(&parts("authorization", "bearer  abc ")).as_deref(),
            Some("abc")
        );
        assert_eq!(key(&parts("authorization", "Basic abc")).as_deref(), None);
        assert_eq!(key(&parts("authorization", "Bearer ")).as_deref(), None);
        assert_eq!(key(&parts("x-api-key", " k1 ")).as_deref(), Some("k1"));
        assert_eq!(key(&parts("x-other", "k1")).as_deref(), None);
    }

    #[test]
    fn streams_may_carry_the_key_in_the_query() {
        let ws = request("/ws/1?api_key=fry_a%2Bb&x=1", "upgrade", "websocket");
        assert_eq!(key(&ws).as_deref(), Some("fry_a+b"));
        let sse = request("/v1/jobs/1/events?api_key=k", "accept", "text/event-stream");
        assert_eq!(key(&sse).as_deref(), Some("k"));
        let plain = request("/v1/jobs?api_key=k", "accept", "application/json");
        assert_eq!(key(&plain).as_deref(), None, "not on ordinary requests");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
