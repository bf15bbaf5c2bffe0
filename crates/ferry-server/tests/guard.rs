//! What guards the API, over real HTTP on loopback: API keys and tenant isolation, the
//! per-tenant rate limit, body-size limits, and bad input on seed 001's routes, every one
//! answered as problem+json with the right status.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;

use ferry_server::api::TenantRate;
use ferry_server::AppState;
use ferry_store::Store;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Api {
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The API without a worker (jobs stay pending), adjusted by `tune`.
async fn start(name: &str, tune: impl FnOnce(&mut AppState)) -> Api {
    let store = common::sqlite_store("guard", name).await;
    let mut state = AppState::new(Arc::clone(&store));
    tune(&mut state);
    let shutdown = CancellationToken::new();
    let base = common::serve(state, &shutdown).await;
    Api {
        base,
        store,
        client: reqwest::Client::new(),
        shutdown,
    }
}

/// Asserts a problem+json answer with `status`, returning its detail.
async fn problem(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string(), "{body}");
    body["detail"].as_str().unwrap().to_owned()
}

async fn send(r: RequestBuilder) -> Response {
    r.send().await.unwrap()
}

#[tokio::test]
async fn keys_are_required_and_tenants_see_only_their_own_jobs() {
    let api = start("keys", |s| s.auth_required = true).await;
    let acme = api.store.create_key("acme", "ci").await.unwrap().plaintext;
    let umbrella = api.store.create_key("umbrella", "ci").await.unwrap();
    let predict = format!("{}/api/v1/batch/predict", api.base);
    let body = json!({"texts": ["fine"]});

    // Health stays open.
    let health = send(api.client.get(format!("{}/healthz", api.base))).await;
    assert_eq!(health.status(), StatusCode::OK);

    let detail = problem(
        send(api.client.post(&predict).json(&body)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(detail.contains("requires an API key"), "{detail}");
    let detail = problem(
        send(
            api.client
                .post(&predict)
                .bearer_auth("fry_wrong")
                .json(&body),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(detail.contains("unknown or revoked"), "{detail}");

    // acme submits (Bearer); umbrella (X-API-Key) cannot see, read or cancel it.
    let job: Value = send(api.client.post(&predict).bearer_auth(&acme).json(&body))
        .await
        .json()
        .await
        .unwrap();
    let id = job["job_id"].as_str().unwrap();
    let own = send(
        api.client
            .get(format!("{}/api/v1/batch/status/{id}", api.base))
            .header("x-api-key", &acme),
    )
    .await;
    assert_eq!(own.status(), StatusCode::OK);
    for (method, path) in [
        ("GET", format!("/api/v1/batch/status/{id}")),
        ("GET", format!("/api/v1/batch/results/{id}")),
        ("DELETE", format!("/api/v1/batch/jobs/{id}")),
    ] {
        let r = api
            .client
            .request(method.parse().unwrap(), format!("{}{path}", api.base))
            .header("x-api-key", &umbrella.plaintext);
        let detail = problem(send(r).await, StatusCode::NOT_FOUND).await;
        assert!(detail.contains(id), "{method} {path}: {detail}");
    }
    // The job was not cancelled by the other tenant.
    let still = api.store.job("acme", &id.into()).await.unwrap().unwrap();
    assert_eq!(still.status.as_str(), "pending");

    // A revoked key stops working at once.
    assert!(api.store.revoke_key(&umbrella.key.id).await.unwrap());
    let r = send(
        api.client
            .get(format!("{}/api/v1/batch/queue/status", api.base))
            .header("x-api-key", &umbrella.plaintext),
    )
    .await;
    problem(r, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_key_created_while_running_makes_keys_required() {
    let api = start("late-key", |_| {}).await;
    let url = format!("{}/api/v1/batch/queue/status", api.base);
    let open = send(api.client.get(&url)).await;
    assert_eq!(open.status(), StatusCode::OK, "no keys: open");
    let key = api
        .store
        .create_key("acme", "late")
        .await
        .unwrap()
        .plaintext;
    // Within RECHECK (2 s) the service notices; poll until it does (10 s at most).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = send(api.client.get(&url)).await;
        if r.status() == StatusCode::UNAUTHORIZED {
            problem(r, StatusCode::UNAUTHORIZED).await;
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "keys never became required"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let with_key = send(api.client.get(&url).bearer_auth(&key)).await;
    assert_eq!(with_key.status(), StatusCode::OK);
    // Revoking every key does not open the service again.
    let id = api.store.list_keys(None).await.unwrap()[0].id.clone();
    assert!(api.store.revoke_key(&id).await.unwrap());
    let r = send(api.client.get(&url)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_on_seed_routes_is_problem_json() {
    let api = start("bad", |s| {
        s.max_body_bytes = 4096;
        s.max_texts = 10;
        s.max_text_chars = 100;
    })
    .await;
    let predict = format!("{}/api/v1/batch/predict", api.base);
    let post = |body: &str| {
        api.client
            .post(&predict)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };

    let d = problem(send(post("{\"texts\": [")).await, StatusCode::BAD_REQUEST).await;
    assert!(d.contains("EOF") || d.contains("syntax"), "{d}");
    let d = problem(
        send(post("{\"texts\": \"not a list\"}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(d.contains("texts"), "{d}");
    let d = problem(
        send(post("{\"texts\": [1, 2]}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(d.contains("texts"), "{d}");
    let d = problem(
        send(post("{\"texts\": [\"a\"], \"priority\": \"urgent\"}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(d.contains("priority") || d.contains("urgent"), "{d}");
    let d = problem(
        send(post("{\"texts\": []}")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(d.contains("empty"), "{d}");
    let eleven: Vec<&str> = vec!["x"; 11];
    let d = problem(
        send(api.client.post(&predict).json(&json!({ "texts": eleven }))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(d.contains("11 texts") && d.contains("limit is 10"), "{d}");
    let d = problem(
        send(
            api.client
                .post(&predict)
                .json(&json!({ "texts": ["ok", "y".repeat(101)] })),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(d.contains("texts[1]") && d.contains("101"), "{d}");
    let d = problem(
        send(
            api.client
                .post(&predict)
                .json(&json!({ "texts": ["z".repeat(5000)] })),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(d.contains("4096 bytes"), "{d}");
    let d = problem(
        send(api.client.post(&predict).body("{\"texts\": [\"a\"]}")).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    assert!(d.contains("application/json"), "{d}");

    let d = problem(
        send(
            api.client
                .get(format!("{}/api/v1/batch/status/nope", api.base)),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(d.contains("nope"), "{d}");
    let d = problem(
        send(
            api.client
                .get(format!("{}/api/v1/batch/results/nope?page=x", api.base)),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(d.contains("page"), "{d}");
    // An id that is not UTF-8 after decoding.
    problem(
        send(
            api.client
                .get(format!("{}/api/v1/batch/status/%FF", api.base)),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // A page far past the end is empty, not an overflow; whole-number floats are numbers.
    let job: Value = send(
        api.client
            .post(&predict)
            .json(&json!({"texts": ["a"], "timeout_seconds": 300.0, "max_batch_size": 100})),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = job["job_id"].as_str().unwrap();
    let far: Value = send(api.client.get(format!(
        "{}/api/v1/batch/results/{id}?page=9223372036854775807&page_size=1000",
        api.base
    )))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(far["results"], json!([]));
    assert_eq!(far["has_more"], false);
    // Past int64 (the documented format) the page is refused.
    let d = problem(
        send(api.client.get(format!(
            "{}/api/v1/batch/results/{id}?page=9223372036854775808",
            api.base
        )))
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(d.contains("page"), "{d}");
}

#[tokio::test]
async fn each_tenant_is_rate_limited_on_its_own() {
    let api = start("rate", |s| {
        s.auth_required = true;
        s.tenant_rate = Some(TenantRate::new(NonZeroU32::new(3).unwrap()));
    })
    .await;
    let a = api.store.create_key("a", "").await.unwrap().plaintext;
    let b = api.store.create_key("b", "").await.unwrap().plaintext;
    let url = format!("{}/api/v1/batch/queue/status", api.base);
    for _ in 0..3 {
        let r = send(api.client.get(&url).bearer_auth(&a)).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let limited = send(api.client.get(&url).bearer_auth(&a)).await;
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let d = problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(d.contains("3 requests per second"), "{d}");
    let other = send(api.client.get(&url).bearer_auth(&b)).await;
    assert_eq!(other.status(), StatusCode::OK, "b has its own budget");
    let health = send(api.client.get(format!("{}/healthz", api.base))).await;
    assert_eq!(health.status(), StatusCode::OK, "health is never limited");
}
