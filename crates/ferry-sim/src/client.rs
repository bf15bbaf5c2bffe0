//! The benchmark's baseline: a plain fixed client told a profile's settings ([`Plan`]). It
//! sends the monday.com board-update work ([`Work`]: N items as aliased
//! `change_multiple_column_values` mutations, values shaped as the board's date and country
//! columns take them) in batches of a fixed size, with a fixed number of requests in
//! flight, starting requests no faster than the told rate, and never gives an item up for
//! back-pressure:
//!
//! * `429`: waits `Retry-After` (or `retry_in_seconds`; fractions taken), then resends;
//! * `COMPLEXITY_BUDGET_EXHAUSTED` in a `200` body: waits `retry_in_seconds`, then resends;
//! * `5xx` (`504` included) or a connection that closed unanswered: resends at once (the
//!   values are idempotent, so an applied-then-dropped batch may be applied twice);
//! * an error naming aliases: those items are rejected (the API refused their values), the
//!   others confirmed;
//! * an error naming no alias (unnamed poison): the batch is halved and each half queued
//!   again, down to a single item, which is then rejected.
//!
//! Nothing adapts: it is what "a client that knows the settings" gets, to compare with one
//! that has to learn them. The transport is a [`Transport`]: [`AppTransport`] runs the
//! simulator's app in-process (tests, on a paused clock); the `ferry-sim-client` binary
//! posts over HTTP.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::Request;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::{Plan, SimState};

/// One answer to a `POST /v2`, as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds (fractions allowed), if given.
    pub retry_after: Option<f64>,
    /// The JSON body (`null` when it is not JSON).
    pub body: Value,
}

/// Sends a GraphQL request body and returns the answer, or why there was none (e.g. the
/// connection closed unanswered).
pub trait Transport: Clone + Send + Sync + 'static {
    /// Posts `body` (`{"query": ...}`) to the GraphQL endpoint.
    fn post(&self, body: String) -> impl Future<Output = Result<Reply, String>> + Send;
}

/// The simulator's [`app`](crate::app) called in-process, without sockets: what tests use
/// on a paused clock. A dropped connection shows as a body that fails.
#[derive(Debug, Clone)]
pub struct AppTransport {
    router: Router,
}

impl AppTransport {
    /// A transport to the simulator `state`.
    pub fn new(state: SimState) -> Self {
        AppTransport {
            router: crate::app(state),
        }
    }
}

impl Transport for AppTransport {
    async fn post(&self, body: String) -> Result<Reply, String> {
        let request = Request::post("/v2")
            .header(AUTHORIZATION, "fixed-client")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .map_err(|e| e.to_string())?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| format!("connection closed: {e}"))?;
        Ok(Reply {
            status,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }
}

/// The board-update work: `items` items with ids from `first_id`, on board `board_id`,
/// each setting `date4` to `{"date": ...}` and `country` to
/// `{"countryCode": ..., "countryName": ...}`; with `poison_every = Some(k)`, every k-th
/// item (the middle one of each k) carries the poison code `INVALID` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// How many items.
    pub items: usize,
    /// The first item id.
    pub first_id: u64,
    /// The board id sent with every mutation.
    pub board_id: u64,
    /// One poisoned item in every `k`, if set.
    pub poison_every: Option<usize>,
}

impl Default for Work {
    /// 5,000 items from id 1,000,000 on board 8709134353, no poison.
    fn default() -> Self {
        Work {
            items: 5_000,
            first_id: 1_000_000,
            board_id: 8_709_134_353,
            poison_every: None,
        }
    }
}

const COUNTRIES: [(&str, &str); 8] = [
    ("US", "United States"),
    ("CN", "China"),
    ("VN", "Viet Nam"),
    ("IN", "India"),
    ("MX", "Mexico"),
    ("DE", "Germany"),
    ("TR", "Türkiye"),
    ("BD", "Bangladesh"),
];

impl Work {
    /// Whether item `i` (0-based) is poisoned.
    pub fn poisoned(&self, i: usize) -> bool {
        self.poison_every.is_some_and(|k| k > 0 && i % k == k / 2)
    }

    /// Item `i`'s id and column values.
    pub fn item(&self, i: usize) -> (u64, Value) {
        let (code, name) = COUNTRIES[i % COUNTRIES.len()];
        let code = if self.poisoned(i) { "INVALID" } else { code };
        let date = format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
        let id = self.first_id + i as u64;
        let values = json!({
            "date4": {"date": date},
            "country": {"countryCode": code, "countryName": name},
        });
        (id, values)
    }

    /// The request body for items `batch`: one aliased mutation per item, `a0`, `a1`, ...
    pub fn body(&self, batch: &[usize]) -> String {
        let fields: Vec<String> = batch
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let (id, values) = self.item(i);
                // A JSON string literal is a valid GraphQL string literal.
                let literal = Value::String(values.to_string()).to_string();
                format!(
                    "a{k}: change_multiple_column_values(item_id: {id}, board_id: {}, column_values: {literal}) {{ id }}",
                    self.board_id
                )
            })
            .collect();
        json!({"query": format!("mutation {{ {} }}", fields.join(" "))}).to_string()
    }
}

/// What a [`FixedClient::run`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Items in the work.
    pub items: usize,
    /// Items the API confirmed (answered with an id).
    pub confirmed: usize,
    /// Items the API refused by name (or, alone, without one): given up.
    pub rejected: Vec<u64>,
    /// Wall time (or virtual time, on a paused clock) from the first request to the last answer.
    pub elapsed: Duration,
    /// Requests sent.
    pub requests: u64,
    /// Resends after a `429`.
    pub rate_limited: u64,
    /// Resends after a complexity-budget error.
    pub budget_exhausted: u64,
    /// Resends after a `5xx` (`504` included).
    pub server_errors: u64,
    /// Resends after a connection closed unanswered.
    pub dropped: u64,
    /// Batches halved after an error naming no alias.
    pub splits: u64,
}

impl Report {
    /// Confirmed items per second.
    pub fn items_per_s(&self) -> f64 {
        self.confirmed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The fixed client: its [`Plan`] and nothing else.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedClient {
    /// Batch size, concurrency and request rate, as told.
    pub plan: Plan,
}

/// How one answer is handled.
enum Verdict {
    /// Resend after this long; the counter to charge.
    Resend(Duration, fn(&mut Report)),
    /// Done: these batch positions confirmed, these rejected.
    Done(Vec<bool>),
    /// An error naming no item: halve.
    Split,
}

struct Shared {
    queue: Mutex<(VecDeque<Vec<usize>>, usize)>,
    report: Mutex<Report>,
    wake: Notify,
    next_start: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FixedClient {
    /// Sends all of `work` through `transport` and reports.
    pub async fn run<T: Transport>(&self, transport: T, work: &Work) -> Report {
        let batch = self.plan.batch.max(1);
        let all: Vec<usize> = (0..work.items).collect();
        let shared = Arc::new(Shared {
            queue: Mutex::new((all.chunks(batch).map(<[usize]>::to_vec).collect(), 0)),
            report: Mutex::new(Report {
                items: work.items,
                ..Report::default()
            }),
            wake: Notify::new(),
            next_start: Mutex::new(Instant::now()),
        });
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.plan.concurrency.max(1) {
            let (shared, transport, work, me) =
                (Arc::clone(&shared), transport.clone(), work.clone(), *self);
            workers.spawn(async move { me.worker(&shared, &transport, &work).await });
        }
        while workers.join_next().await.is_some() {}
        let mut report = lock(&shared.report).clone();
        report.elapsed = started.elapsed();
        report
    }

    async fn worker<T: Transport>(&self, shared: &Shared, transport: &T, work: &Work) {
        loop {
            let next = {
                let mut q = lock(&shared.queue);
                match q.0.pop_front() {
                    Some(b) => {
                        q.1 += 1;
                        Some(b)
                    }
                    None if q.1 == 0 => return,
                    None => None,
                }
            };
            let Some(batch) = next else {
                // Another worker may split its batch: wait for it (or re-check soon).
                let _ =
                    tokio::time::timeout(Duration::from_millis(20), shared.wake.notified()).await;
                continue;
            };
            let halves = self.send(shared, transport, work, &batch).await;
            let mut q = lock(&shared.queue);
            for half in halves.into_iter().rev() {
                q.0.push_front(half);
            }
            q.1 -= 1;
            drop(q);
            shared.wake.notify_waiters();
        }
    }

    /// Waits for this request's start under the told rate.
    async fn pace(&self, shared: &Shared) {
        let Some(rate) = self.plan.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let at = {
            let mut next = lock(&shared.next_start);
            let at = (*next).max(Instant::now());
            *next = at + Duration::from_secs_f64(1.0 / rate);
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Sends `batch` until it is resolved; returns the halves to queue if it was split.
    async fn send<T: Transport>(
        &self,
        shared: &Shared,
        transport: &T,
        work: &Work,
        batch: &[usize],
    ) -> Vec<Vec<usize>> {
        let body = work.body(batch);
        loop {
            self.pace(shared).await;
            lock(&shared.report).requests += 1;
            let verdict = match transport.post(body.clone()).await {
                Err(_) => Verdict::Resend(Duration::ZERO, |r| r.dropped += 1),
                Ok(reply) => judge(&reply, batch.len()),
            };
            match verdict {
                Verdict::Resend(wait, count) => {
                    count(&mut lock(&shared.report));
                    tokio::time::sleep(wait).await;
                }
                Verdict::Done(ok) => {
                    let mut r = lock(&shared.report);
                    for (&i, ok) in batch.iter().zip(ok) {
                        if ok {
                            r.confirmed += 1;
                        } else {
                            r.rejected.push(work.item(i).0);
                        }
                    }
                    return Vec::new();
                }
                Verdict::Split if batch.len() > 1 => {
                    lock(&shared.report).splits += 1;
                    let (a, b) = batch.split_at(batch.len() / 2);
                    return vec![a.to_vec(), b.to_vec()];
                }
                Verdict::Split => {
                    lock(&shared.report).rejected.push(work.item(batch[0]).0);
                    return Vec::new();
                }
            }
        }
    }
}

/// What to do with `reply` to a batch of `n` (aliases `a0`..).
fn judge(reply: &Reply, n: usize) -> Verdict {
    let body = &reply.body;
    let seconds = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1));
    match reply.status {
        429 => {
            let wait = reply
                .retry_after
                .or_else(|| body["retry_in_seconds"].as_f64())
                .unwrap_or(1.0);
            return Verdict::Resend(seconds(wait), |r| r.rate_limited += 1);
        }
        500..=599 => return Verdict::Resend(Duration::ZERO, |r| r.server_errors += 1),
        200 => {}
        // 400, 401: nothing will change by resending.
        _ => return Verdict::Done(vec![false; n]),
    }
    let errors = body["errors"].as_array().map_or(&[][..], Vec::as_slice);
    if let Some(e) = errors
        .iter()
        .find(|e| e["extensions"]["code"] == "COMPLEXITY_BUDGET_EXHAUSTED")
    {
        let wait = e["extensions"]["retry_in_seconds"].as_f64().unwrap_or(1.0);
        return Verdict::Resend(seconds(wait), |r| r.budget_exhausted += 1);
    }
    match body["data"].as_object() {
        Some(data) => Verdict::Done(
            (0..n)
                .map(|k| data.get(&format!("a{k}")).is_some_and(|v| !v.is_null()))
                .collect(),
        ),
        None if !errors.is_empty() => Verdict::Split,
        None => Verdict::Done(vec![false; n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, retry_after: Option<f64>, body: Value) -> Reply {
        Reply {
            status,
            retry_after,
            body,
        }
    }

    #[test]
    fn answers_are_judged_as_documented() {
        let wait = |v: Verdict| match v {
            Verdict::Resend(d, _) => Some(d),
            _ => None,
        };
        assert_eq!(
            wait(judge(&reply(429, Some(0.12), json!({})), 2)),
            Some(Duration::from_millis(120))
        );
        assert_eq!(
            wait(judge(&reply(429, None, json!({"retry_in_seconds": 1})), 2)),
            Some(Duration::from_secs(1))
        );
        let budget = json!({"errors": [{"message": "Complexity budget exhausted",
            "extensions": {"code": "COMPLEXITY_BUDGET_EXHAUSTED", "retry_in_seconds": 3}}]});
        assert_eq!(
            wait(judge(&reply(200, None, budget), 2)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            wait(judge(&reply(504, None, json!({})), 2)),
            Some(Duration::ZERO)
        );
        let named = json!({"data": {"a0": {"id": "1"}, "a1": null}, "errors": [{"path": ["a1"]}]});
        assert!(
            matches!(judge(&reply(200, None, named), 2), Verdict::Done(v) if v == [true, false])
        );
        let unnamed = json!({"errors": [{"message": "invalid value"}]});
        assert!(matches!(
            judge(&reply(200, None, unnamed), 2),
            Verdict::Split
        ));
        assert!(matches!(judge(&reply(401, None, json!({})), 1), Verdict::Done(v) if v == [false]));
    }

    #[test]
    fn work_shapes_values_for_the_typed_columns() {
        let w = Work {
            items: 20,
            poison_every: Some(10),
            ..Work::default()
        };
        let (id, v) = w.item(0);
        assert_eq!(id, 1_000_000);
        assert_eq!(v["date4"], json!({"date": "2025-01-01"}));
        assert_eq!(v["country"]["countryCode"], "US");
        assert!(w.poisoned(5) && w.poisoned(15) && !w.poisoned(0));
        assert_eq!(w.item(5).1["country"]["countryCode"], "INVALID");
        let body: Value = serde_json::from_str(&w.body(&[0, 1])).unwrap();
        assert!(body["query"]
            .as_str()
            .unwrap()
            .contains("a1: change_multiple_column_values(item_id: 1000001"));
    }
}
