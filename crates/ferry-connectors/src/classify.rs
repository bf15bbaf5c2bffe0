//! HTTP responses and transport errors mapped onto the engine's outcomes.
//!
//! | what came back | outcome |
//! |---|---|
//! | 2xx | the connector reads the body (per-item results, per-alias errors) |
//! | 429, 503 | `Throttled { after: Retry-After }`: no attempt charged; pauses every call to the target, and the engine learns its rate |
//! | 413, 504 | `TooLarge`: overload when other calls were in flight (concurrency is cut, the batch re-sent), else split and the adaptive batch size learns the limit |
//! | other 5xx | `Retry`; after `split_after` failures the engine splits the batch |
//! | other 4xx | `Fatal` with the body's message |
//! | connection refused / DNS / TLS before sending | `Retry` (nothing reached the target) |
//! | connection lost after sending, body cut off | `Retry`, counted as *ambiguous*: the target may have applied the change |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::BatchOutcome;
use reqwest::StatusCode;

/// Counters a connector keeps beside the engine's, for the end report.
#[derive(Debug, Default)]
pub struct CallCounters {
    /// Calls that failed after the request was sent without a complete answer: the target
    /// may have applied them, so a retry may apply them twice.
    pub ambiguous: AtomicU64,
}

impl CallCounters {
    /// A shared, zeroed set of counters.
    pub fn shared() -> Arc<Self> {
        Arc::default()
    }

    /// Calls that failed ambiguously so far.
    pub fn ambiguous(&self) -> u64 {
        self.ambiguous.load(Ordering::Relaxed)
    }
}

/// Parses a `Retry-After` header: delay-seconds (fractions accepted). HTTP dates are not
/// honoured (they need a trusted clock); such a header yields `None` and the engine's own
/// backoff applies.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The outcome of a non-2xx status; `None` for 2xx (the connector reads the body).
pub fn status_outcome<R>(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> Option<BatchOutcome<R>> {
    if status.is_success() {
        return None;
    }
    let reason = format!("HTTP {}: {}", status.as_u16(), body_message(body));
    Some(match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            BatchOutcome::throttled(retry_after(headers), reason)
        }
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::GATEWAY_TIMEOUT => {
            BatchOutcome::too_large(reason)
        }
        s if s.is_server_error() => BatchOutcome::retry(None, reason),
        _ => BatchOutcome::fatal(reason),
    })
}

/// The outcome of a transport error; counts ambiguous failures.
pub fn transport_outcome<R>(err: &reqwest::Error, counters: &CallCounters) -> BatchOutcome<R> {
    // A connect error means nothing was sent; anything else (a reset while waiting, a body
    // cut off) may have been applied by the target.
    if !err.is_connect() && !err.is_builder() {
        counters.ambiguous.fetch_add(1, Ordering::Relaxed);
    }
    BatchOutcome::retry(None, format!("transport: {}", error_chain(err)))
}

/// Sends `request` and reads the whole body: `Ok(body)` for a 2xx answer, else the outcome
/// the status or the transport error maps to (counting ambiguous failures).
pub async fn exchange<R>(
    request: reqwest::RequestBuilder,
    counters: &CallCounters,
) -> Result<String, BatchOutcome<R>> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_outcome(&e, counters))?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .map_err(|e| transport_outcome(&e, counters))?;
    match status_outcome(status, &headers, &text) {
        Some(outcome) => Err(outcome),
        None => Ok(text),
    }
}

/// A short human message from an error body: a JSON `error_message`, `message`, `error`, or
/// `errors[0].message` if present, else the text itself (truncated).
pub fn body_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["error_message", "message", "error"] {
            if let Some(s) = v.get(key).and_then(|m| m.as_str()) {
                return s.to_owned();
            }
        }
        if let Some(s) = v.pointer("/errors/0/message").and_then(|m| m.as_str()) {
            return s.to_owned();
        }
    }
    let text = body.trim();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// Checks that `url`'s host accepts TCP connections (5 s at most), so an unreachable target
/// is one clear error naming it before any item is read, rather than every batch failing
/// its retries.
pub async fn preflight(url: &reqwest::Url) -> Result<(), crate::Error> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    let message = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => format!("cannot reach {host}:{port}: {e}"),
        Err(_) => format!("cannot reach {host}:{port}: no answer within 5 s"),
    };
    Err(crate::Error::Http {
        url: url.to_string(),
        message,
    })
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn headers(retry: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(r) = retry {
            h.insert(RETRY_AFTER, HeaderValue::from_str(r).unwrap());
        }
        h
    }

    #[test]
    fn classification_table() {
        let o: Option<BatchOutcome<()>> = status_outcome(StatusCode::OK, &headers(None), "");
        assert!(o.is_none());
        match status_outcome::<()>(StatusCode::TOO_MANY_REQUESTS, &headers(Some("7")), "{}") {
            Some(BatchOutcome::Throttled { after, .. }) => {
                assert_eq!(after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        match status_outcome::<()>(StatusCode::SERVICE_UNAVAILABLE, &headers(Some("0.12")), "") {
            Some(BatchOutcome::Throttled { after, .. }) => {
                assert_eq!(after, Some(Duration::from_millis(120)))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            status_outcome::<()>(StatusCode::GATEWAY_TIMEOUT, &headers(None), ""),
            Some(BatchOutcome::TooLarge { .. })
        ));
        assert!(matches!(
            status_outcome::<()>(StatusCode::PAYLOAD_TOO_LARGE, &headers(None), ""),
            Some(BatchOutcome::TooLarge { .. })
        ));
        assert!(matches!(
            status_outcome::<()>(StatusCode::BAD_GATEWAY, &headers(None), ""),
            Some(BatchOutcome::Retry { after: None, .. })
        ));
        match status_outcome::<()>(
            StatusCode::UNAUTHORIZED,
            &headers(None),
            r#"{"error_message":"Not Authenticated"}"#,
        ) {
            Some(BatchOutcome::Fatal { reason }) => {
                assert_eq!(reason, "HTTP 401: Not Authenticated")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(Some("1.5"))),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(Some("Wed, 21 Oct 2015 07:28:00 GMT"))),
            None
        );
        assert_eq!(retry_after(&headers(Some("-3"))), None);
        assert_eq!(retry_after(&headers(None)), None);
    }

    #[test]
    fn body_messages() {
        assert_eq!(body_message(r#"{"errors":[{"message":"bad"}]}"#), "bad");
        assert_eq!(body_message("plain"), "plain");
        assert_eq!(body_message(&"x".repeat(400)).chars().count(), 301);
    }
}
