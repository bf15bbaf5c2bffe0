//! End-to-end tests of the simulator over real HTTP on 127.0.0.1, with a reqwest client.
//! Costs are a few milliseconds so the suite stays fast.

use std::time::{Duration, Instant};

use ferry_sim::{SimConfig, Simulator, Stats};
use serde_json::{json, Value};

/// Fast settings: 2 ms + 1 ms per mutation, a 200 ms timeout (L = 198), no real rate limit.
fn fast() -> SimConfig {
    SimConfig {
        slots: 4,
        per_request: Duration::from_millis(2),
        per_mutation: Duration::from_millis(1),
        request_timeout: Duration::from_millis(200),
        rate_limit: 10_000,
        ..SimConfig::default()
    }
}

/// A running simulator and a client for it.
struct Fixture {
    sim: Simulator,
    client: reqwest::Client,
}

impl Fixture {
    async fn new(config: SimConfig) -> Self {
        Fixture {
            sim: ferry_sim::spawn(config).await.expect("simulator starts"),
            client: reqwest::Client::new(),
        }
    }

    /// Posts `query` with an `Authorization` header.
    async fn post(&self, query: &str) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(self.sim.url())
            .header("Authorization", "test-token")
            .json(&json!({ "query": query }))
            .send()
            .await
    }

    /// Posts `query` and returns the status and the JSON body.
    async fn call(&self, query: &str) -> (u16, Value) {
        let resp = self.post(query).await.expect("a response");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("a JSON body"))
    }

    /// `GET /stats`, parsed into `Stats` (and checked against the direct read).
    async fn http_stats(&self) -> Stats {
        let stats: Stats = self
            .client
            .get(format!("{}/stats", self.sim.base_url()))
            .send()
            .await
            .expect("stats answer")
            .json()
            .await
            .expect("stats JSON");
        assert_eq!(stats, self.sim.stats());
        stats
    }
}

/// `mutation { a0: change_multiple_column_values(item_id: .., board_id: 456, column_values: "..") { id } ... }`
fn mutation(items: &[(u64, Value)]) -> String {
    let fields: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, (item_id, cols))| {
            // A JSON string literal is a valid GraphQL string literal.
            let literal = serde_json::to_string(&cols.to_string()).expect("a string");
            format!(
                "a{i}: change_multiple_column_values(item_id: {item_id}, board_id: 456, column_values: {literal}) {{ id }}"
            )
        })
        .collect();
    format!("mutation {{ {} }}", fields.join("\n"))
}

/// An error and its sources, as one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn cols(date: &str, country: &str) -> Value {
    json!({"date4": date, "country": country})
}

#[tokio::test]
async fn a_good_mutation_is_applied_and_visible_in_stats() {
    let f = Fixture::new(fast()).await;
    let (status, body) = f
        .call(&mutation(&[
            (123, cols("2024-01-02", "US")),
            (124, cols("2024-01-03", "FR")),
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": {"a0": {"id": "123"}, "a1": {"id": "124"}}})
    );

    let stats = f.http_stats().await;
    assert_eq!((stats.requests, stats.mutations_applied), (1, 2));
    assert_eq!(stats.items[&123].applies, 1);
    assert_eq!(
        Value::Object(stats.items[&123].values.clone()),
        cols("2024-01-02", "US")
    );

    // The raw /stats JSON keys items by id as strings.
    let raw: Value = f
        .client
        .get(format!("{}/stats", f.sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["items"]["124"]["values"]["country"], "FR");
    assert_eq!(raw["mutations_applied"], 2);
}

#[tokio::test]
async fn a_poisoned_alias_gets_a_graphql_error_and_the_others_are_applied() {
    let f = Fixture::new(fast()).await;
    let (status, body) = f
        .call(&mutation(&[
            (1, cols("2024-01-01", "US")),
            (2, cols("2024-01-02", "US")),
            (3, cols("2024-01-03", "US")),
            (4, cols("2024-01-04", "INVALID")),
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "data": {"a0": {"id": "1"}, "a1": {"id": "2"}, "a2": {"id": "3"}, "a3": null},
            "errors": [{
                "message": "invalid value for column country: INVALID",
                "path": ["a3"],
                "extensions": {"code": "ColumnValueException"},
            }],
        })
    );
    let stats = f.http_stats().await;
    assert_eq!((stats.mutations_applied, stats.poison_rejected), (3, 1));
    assert!(stats.items.contains_key(&3));
    assert!(!stats.items.contains_key(&4));
}

#[tokio::test]
async fn over_the_rate_limit_gets_429_with_retry_after() {
    let f = Fixture::new(SimConfig {
        rate_limit: 2,
        ..fast()
    })
    .await;
    let q = mutation(&[(1, cols("2024-01-01", "US"))]);
    assert_eq!(f.call(&q).await.0, 200);
    assert_eq!(f.call(&q).await.0, 200);
    let resp = f.post(&q).await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error_message": "Rate limit exceeded", "retry_in_seconds": 1})
    );
    let stats = f.sim.stats();
    assert_eq!((stats.requests, stats.rejected_429), (3, 1));
    assert_eq!(stats.items[&1].applies, 2);
}

#[tokio::test]
async fn an_over_long_request_gets_504_after_the_timeout_and_applies_nothing() {
    let f = Fixture::new(SimConfig {
        per_mutation: Duration::from_millis(50),
        request_timeout: Duration::from_millis(100),
        ..fast()
    })
    .await;
    // 30 mutations would cost 2 + 1,500 ms: the answer comes at the 100 ms timeout.
    let items: Vec<(u64, Value)> = (0..30).map(|i| (i, cols("2024-01-01", "US"))).collect();
    let t0 = Instant::now();
    let (status, body) = f.call(&mutation(&items)).await;
    let elapsed = t0.elapsed();
    assert_eq!(status, 504);
    assert_eq!(body, json!({"error_message": "Request timed out"}));
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_000), "{elapsed:?}");
    let stats = f.sim.stats();
    assert_eq!((stats.timeouts, stats.mutations_applied), (1, 0));
    assert!(stats.items.is_empty());

    // One mutation (52 ms) fits.
    let (status, _) = f.call(&mutation(&items[..1])).await;
    assert_eq!(status, 200);
    assert_eq!(f.sim.stats().mutations_applied, 1);
}

#[tokio::test]
async fn error_rate_one_answers_500_and_applies_nothing() {
    let f = Fixture::new(SimConfig {
        error_rate: 1.0,
        ..fast()
    })
    .await;
    for _ in 0..3 {
        let (status, body) = f.call(&mutation(&[(7, cols("2024-01-01", "US"))])).await;
        assert_eq!(status, 500);
        assert_eq!(body, json!({"error_message": "Internal server error"}));
    }
    let stats = f.sim.stats();
    assert_eq!((stats.errors_500, stats.mutations_applied), (3, 0));
    assert!(stats.items.is_empty());
}

#[tokio::test]
async fn drop_rate_one_drops_the_connection_but_the_item_is_applied() {
    let f = Fixture::new(SimConfig {
        drop_rate: 1.0,
        ..fast()
    })
    .await;
    for round in 1..=2 {
        let err = f
            .post(&mutation(&[(9, cols("2024-01-01", "US"))]))
            .await
            .expect_err("no response");
        // The connection closed before any response head: a request error, no status.
        assert!(
            chain(&err).contains("connection closed before message completed"),
            "{err:?}"
        );
        assert!(err.is_request(), "{err:?}");
        assert!(err.status().is_none());
        let stats = f.sim.stats();
        assert_eq!(stats.dropped, round);
        assert_eq!(
            stats.items[&9].applies, round,
            "applied once per request, no retry"
        );
    }
    // The server itself is fine: other connections are answered.
    assert_eq!(f.http_stats().await.mutations_applied, 2);
}

#[tokio::test]
async fn under_another_server_a_dropped_request_gets_a_failing_body() {
    // `app` served by plain `axum::serve`: no connection tag, so the drop is a `200` head
    // (maybe) and a body that fails; the item is applied all the same.
    let state = ferry_sim::SimState::new(SimConfig {
        drop_rate: 1.0,
        ..fast()
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, ferry_sim::app(state.clone())).await });
    let client = reqwest::Client::new();
    let sent = client
        .post(format!("http://{addr}/v2"))
        .header("Authorization", "t")
        .json(&json!({"query": mutation(&[(5, cols("2024-01-01", "US"))])}))
        .send()
        .await;
    let err = match sent {
        Err(e) => e,
        Ok(resp) => resp.bytes().await.expect_err("the body fails"),
    };
    assert!(
        err.is_request() || err.is_body() || err.is_decode(),
        "{err:?}"
    );
    let stats: Stats = client
        .get(format!("http://{addr}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((stats.dropped, stats.items[&5].applies), (1, 1));
}

#[tokio::test]
async fn a_missing_authorization_is_401() {
    let f = Fixture::new(fast()).await;
    let q = json!({"query": mutation(&[(1, cols("2024-01-01", "US"))])});
    for auth in [None, Some(""), Some("  ")] {
        let mut req = f.client.post(f.sim.url()).json(&q);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, json!({"error_message": "Not Authenticated"}));
    }
    let stats = f.sim.stats();
    assert_eq!((stats.requests, stats.unauthorized), (3, 3));
    assert!(stats.items.is_empty());
}

#[tokio::test]
async fn a_parse_error_is_a_graphql_error_body() {
    let f = Fixture::new(fast()).await;
    for query in [
        "mutation { a0: change_multiple_column_values(item_id: 1, board_id: 2 { id } }",
        "query { boards { id } }",
        "mutation { a0: create_item(board_id: 1, item_name: \"x\") { id } }",
    ] {
        let (status, body) = f.call(query).await;
        assert_eq!(status, 200, "{query}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("Parse error"), "{message}");
        assert!(body.get("data").is_none());
    }
    // Not a GraphQL request at all: 400, same error shape.
    let resp = f
        .client
        .post(f.sim.url())
        .header("Authorization", "t")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["errors"][0]["message"].is_string());
    let stats = f.sim.stats();
    assert_eq!(
        (stats.requests, stats.parse_errors, stats.mutations_applied),
        (4, 4, 0)
    );
}

#[tokio::test]
async fn slots_are_shared_and_requests_wait_for_one() {
    let f = Fixture::new(SimConfig {
        slots: 1,
        per_request: Duration::from_millis(30),
        ..fast()
    })
    .await;
    let t0 = Instant::now();
    let qs: Vec<String> = (0..3u64)
        .map(|i| mutation(&[(i, cols("2024-01-01", "US"))]))
        .collect();
    let (a, b, c) = tokio::join!(f.call(&qs[0]), f.call(&qs[1]), f.call(&qs[2]));
    assert_eq!((a.0, b.0, c.0), (200, 200, 200));
    // Three requests of 31 ms through one slot.
    assert!(
        t0.elapsed() >= Duration::from_millis(93),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(f.sim.stats().mutations_applied, 3);
}

#[tokio::test]
async fn reset_clears_the_state() {
    let f = Fixture::new(fast()).await;
    f.call(&mutation(&[(1, cols("2024-01-01", "US"))])).await;
    assert_eq!(f.sim.stats().mutations_applied, 1);
    let resp = f
        .client
        .post(format!("{}/reset", f.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(f.http_stats().await, Stats::default());
}

#[tokio::test]
async fn invalid_settings_are_refused_and_shutdown_stops_the_server() {
    let err = ferry_sim::spawn(SimConfig { slots: 0, ..fast() })
        .await
        .expect_err("slots = 0 is invalid");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("`slots`"), "{err}");

    let f = Fixture::new(fast()).await;
    let url = f.sim.url();
    assert_eq!(f.call(&mutation(&[(1, cols("d", "US"))])).await.0, 200);
    f.sim.shutdown().await.unwrap();
    let after = reqwest::Client::new()
        .post(&url)
        .header("Authorization", "t")
        .body("{}")
        .send()
        .await;
    assert!(after.is_err(), "{after:?}");
}

#[tokio::test]
async fn over_http_a_token_bucket_sends_a_fractional_retry_after_and_stats_show_the_profile() {
    let f = Fixture::new(SimConfig {
        per_request: Duration::from_millis(1),
        per_mutation: Duration::from_millis(1),
        ..ferry_sim::Profile::TokenBucket.config()
    })
    .await;
    let q = mutation(&[(1, json!({"date4": {"date": "2024-01-01"}}))]);
    let mut retry_after = None;
    for _ in 0..20 {
        let resp = f.post(&q).await.unwrap();
        if resp.status().as_u16() == 429 {
            retry_after = resp.headers().get("retry-after").cloned();
            break;
        }
    }
    // Burst 2 at 8 requests/s: one of the first few is refused, with at most 1/8 s to wait.
    let secs: f64 = retry_after
        .expect("a 429")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs > 0.0 && secs <= 0.13, "{secs}");
    let raw: Value = f
        .client
        .get(format!("{}/stats", f.sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["profile"]["name"], "token-bucket");
    // L = (500 − 1) / 1 = 499 mutations, 8 requests/s.
    assert_eq!(raw["profile"]["ceiling_items_per_s"], 8.0 * 499.0);
    assert_eq!(raw["profile"]["plan"]["rate_per_s"], 8.0);
    assert_eq!(raw["rejected_429"], 1);
}

#[path = "sim/profiles.rs"]
mod profiles;
