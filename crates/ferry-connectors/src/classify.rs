//! HTTP responses and transport errors mapped onto the engine's outcomes.
//!
//! | what came back | outcome |
//! |---|---|
//! | 2xx | the connector reads the body (per-item results, per-alias errors); a rate-limit or complexity-budget error inside it is back-pressure ([`body_backpressure`]): `Throttled` |
//! | 429, 503 | `Throttled { after: Retry-After }`: no attempt charged; pauses every call to the target, and the engine learns its rate |
//! | 413, 504 | `TooLarge`: overload when other calls were in flight (concurrency is cut, the batch re-sent), else split and the adaptive batch size learns the limit |
//! | other 5xx | `Retry`; after `split_after` failures the engine splits the batch |
//! | other 4xx | `Fatal` with the body's message |
//! | connection refused / DNS / TLS before sending | `Retry` (nothing reached the target) |
//! | connection lost after sending, body cut off | `Retry`, counted as *ambiguous*: the target may have applied the change |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// Parses a `Retry-After` header: delay-seconds (fractions accepted, e.g. `0.12`) or an
/// HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`, the time left until then by this machine's
/// clock; a date in the past is no wait). Waits are capped at an hour; anything else yields
/// `None` and the engine's own backoff applies.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

/// [`retry_after`] with the clock read as `now`.
pub fn retry_after_at(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs.min(3600.0)),
        Ok(_) => return None,
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(Duration::from_secs(3600)))
}

/// Error codes of rate limits and exhausted budgets that monday.com (and GraphQL APIs like
/// it) send inside `200` bodies, compared without case and underscores.
const BACKPRESSURE_CODES: [&str; 7] = [
    "COMPLEXITYBUDGETEXHAUSTED",
    "COMPLEXITYEXCEPTION",
    "RATELIMITEXCEEDED",
    "IPRATELIMITEXCEEDED",
    "MAXCONCURRENCYEXCEEDED",
    "CONCURRENCYLIMITEXCEEDED",
    "FIELDLIMITEXCEEDED",
];

/// Whether a `200` GraphQL body says "slow down" rather than "this failed": `None` if not,
/// `Some(wait)` if so, with the wait the body names (`None` inside when it names none).
///
/// Recognised, in `errors[]` (objects or plain strings) and in the top-level
/// `error_code`/`error_message` of monday.com's older format:
/// * a code in `extensions.code` or `error_code` such as `COMPLEXITY_BUDGET_EXHAUSTED`,
///   `ComplexityException`, `RATE_LIMIT_EXCEEDED`, `maxConcurrencyExceeded`,
///   `FIELD_LIMIT_EXCEEDED` (case and underscores ignored);
/// * `status_code: 429` in `extensions` or at the top level;
/// * a message holding "complexity budget exhausted" or "rate limit exceeded" (any case).
///
/// The wait is the first of `retry_in_seconds` (in `extensions`, `extensions.error_data`,
/// `error_data` or at the top level; a number or a string holding one) and "reset in N
/// seconds" / "retry in N seconds" in a message. A daily limit (`DAILY_LIMIT_EXCEEDED`) is
/// not back-pressure: it lasts until midnight UTC.
pub fn body_backpressure(body: &serde_json::Value) -> Option<Option<Duration>> {
    use serde_json::Value;
    let errors: Vec<&Value> = body
        .get("errors")
        .and_then(Value::as_array)
        .map(|e| e.iter().collect())
        .unwrap_or_default();
    let mut places: Vec<&Value> = errors.clone();
    if body.get("error_code").is_some() || body.get("error_message").is_some() {
        places.push(body);
    }
    let mut found = false;
    let mut wait = None;
    for place in places {
        let ext = place.get("extensions").unwrap_or(&Value::Null);
        let message = place
            .as_str()
            .or_else(|| place.get("message").and_then(Value::as_str))
            .or_else(|| place.get("error_message").and_then(Value::as_str))
            .unwrap_or_default();
        let code = ext
            .get("code")
            .or_else(|| place.get("error_code"))
            .and_then(Value::as_str)
            .map(|c| c.replace('_', "").to_ascii_uppercase());
        let lower = message.to_ascii_lowercase();
        let status_429 = [ext.get("status_code"), place.get("status_code")]
            .into_iter()
            .flatten()
            .any(|s| s.as_u64() == Some(429));
        let this = code.is_some_and(|c| BACKPRESSURE_CODES.contains(&c.as_str()))
            || status_429
            || lower.contains("complexity budget exhausted")
            || lower.contains("rate limit exceeded");
        if !this {
            continue;
        }
        found = true;
        if wait.is_none() {
            wait = [
                ext.get("retry_in_seconds"),
                ext.pointer("/error_data/retry_in_seconds"),
                place.pointer("/error_data/retry_in_seconds"),
                place.get("retry_in_seconds"),
                body.get("retry_in_seconds"),
            ]
            .into_iter()
            .flatten()
            .find_map(seconds)
            .or_else(|| seconds_in_message(&lower));
        }
    }
    found.then_some(wait)
}

/// A non-negative number of seconds (a JSON number or a string holding one), capped at an
/// hour.
fn seconds(v: &serde_json::Value) -> Option<Duration> {
    let secs = v
        .as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// `N` in "... reset in N seconds" or "... retry in N seconds" (lower-cased message).
fn seconds_in_message(lower: &str) -> Option<Duration> {
    ["reset in ", "retry in ", "try again in "]
        .iter()
        .find_map(|marker| {
            let at = lower.find(marker)? + marker.len();
            let rest = &lower[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let unit = rest[end..].trim_start();
            if !unit.starts_with("second")
                && !unit.starts_with("sec")
                && unit != "s"
                && !unit.starts_with("s ")
            {
                return None;
            }
            seconds(&serde_json::Value::String(rest[..end].to_owned()))
        })
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

/// An error and its sources, joined with `: `.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
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
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let table: [(Option<&str>, Option<Duration>); 10] = [
            (Some("7"), Some(Duration::from_secs(7))),
            (Some("1.5"), Some(Duration::from_millis(1500))),
            (Some(" 0.12 "), Some(Duration::from_millis(120))),
            (Some("0"), Some(Duration::ZERO)),
            (Some("99999"), Some(Duration::from_secs(3600))),
            (
                Some("Wed, 21 Oct 2015 07:28:30 GMT"),
                Some(Duration::from_secs(30)),
            ),
            (Some("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO)),
            (Some("-3"), None),
            (Some("soon"), None),
            (None, None),
        ];
        for (header, want) in table {
            assert_eq!(retry_after_at(&headers(header), now), want, "{header:?}");
        }
        assert_eq!(
            retry_after(&headers(Some("2"))),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn backpressure_in_200_bodies() {
        use serde_json::json;
        let s = Duration::from_secs;
        let table = [
            // monday.com since 2025-01: the complexity budget.
            (
                json!({"errors": [{"message": "Complexity budget exhausted, query cost 240 budget remaining 20 out of 10000 reset in 7 seconds",
                    "extensions": {"code": "COMPLEXITY_BUDGET_EXHAUSTED", "retry_in_seconds": 34}}]}),
                Some(Some(s(34))),
            ),
            // The same without `retry_in_seconds`: the message says when.
            (
                json!({"errors": [{"message": "Complexity budget exhausted ... reset in 34 seconds"}]}),
                Some(Some(s(34))),
            ),
            (
                json!({"errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATE_LIMIT_EXCEEDED", "retry_in_seconds": 0.5}}]}),
                Some(Some(Duration::from_millis(500))),
            ),
            (
                json!({"errors": [{"message": "Rate Limit Exceeded"}]}),
                Some(None),
            ),
            (
                json!({"errors": [{"message": "slow down", "extensions": {"code": "maxConcurrencyExceeded", "retry_in_seconds": "3"}}]}),
                Some(Some(s(3))),
            ),
            (
                json!({"errors": [{"message": "x", "extensions": {"status_code": 429}}]}),
                Some(None),
            ),
            // monday.com's older format: top-level fields, errors as strings.
            (
                json!({"error_code": "ComplexityException", "status_code": 429,
                    "error_message": "Complexity budget exhausted, query cost 30001 budget remaining 19986 out of 1000000 reset in 3 seconds",
                    "errors": ["Complexity budget exhausted, query cost 30001 budget remaining 19986 out of 1000000 reset in 3 seconds"]}),
                Some(Some(s(3))),
            ),
            (
                json!({"error_message": "Concurrency limit exceeded for the field", "error_code": "FIELD_LIMIT_EXCEEDED",
                    "error_data": {"retry_in_seconds": 15}, "status_code": 429}),
                Some(Some(s(15))),
            ),
            // Not back-pressure.
            (json!({"data": {"a0": {"id": "1"}}}), None),
            (
                json!({"errors": [{"message": "invalid value for column country: INVALID", "path": ["a1"]}]}),
                None,
            ),
            (
                json!({"errors": [{"message": "Daily limit exceeded", "extensions": {"code": "DAILY_LIMIT_EXCEEDED"}}]}),
                None,
            ),
            (
                json!({"errors": [{"message": "Max complexity exceeded", "extensions": {"code": "maxComplexityExceeded"}}]}),
                None,
            ),
            (json!({"errors": "nonsense"}), None),
            (json!("text"), None),
        ];
        for (body, want) in table {
            assert_eq!(body_backpressure(&body), want, "{body}");
        }
    }

    #[test]
    fn body_messages() {
        assert_eq!(body_message(r#"{"errors":[{"message":"bad"}]}"#), "bad");
        assert_eq!(body_message("plain"), "plain");
        assert_eq!(body_message(&"x".repeat(400)).chars().count(), 301);
    }
}
