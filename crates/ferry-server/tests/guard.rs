//! What guards the API, driven in-process (`oneshot`): API keys and tenant isolation, keys
//! that become required while the service runs (and stay so), the per-tenant rate limit,
//! per-tenant quotas, body-size limits, and bad input on the batch API's routes, every one answered as
//! problem+json with the right status. Time-based guards run on a manual clock.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use axum::http::StatusCode;
use common::{raw_post, TestApp};
use ferry_server::api::{TenantRate, RECHECK};
use ferry_server::AppState;
use serde_json::json;

/// The API without a worker (jobs stay pending), adjusted by `tune`.
async fn start(name: &str, tune: impl FnOnce(&mut AppState)) -> TestApp {
    TestApp::start("guard", name, None, tune).await
}

#[tokio::test]
async fn keys_are_required_and_tenants_see_only_their_own_jobs() {
    let api = start("keys", |s| s.auth_required = true).await;
    let acme = api.key("acme").await;
    let umbrella = api.store.create_key("umbrella", "ci").await.unwrap();
    let predict = "/api/v1/batch/predict";
    let body = json!({"texts": ["fine"]});

    // Health stays open.
    assert_eq!(api.get("/healthz", None).await.status, StatusCode::OK);

    let detail = api
        .post(predict, None, &body)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("requires an API key"), "{detail}");
    let detail = api
        .post(predict, Some("fry_wrong"), &body)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(detail.contains("unknown or revoked"), "{detail}");

    // acme submits; umbrella cannot see, read or cancel it.
    let job = api.post(predict, Some(&acme), &body).await.ok();
    let id = job["job_id"].as_str().unwrap();
    let own = api
        .get(&format!("/api/v1/batch/status/{id}"), Some(&acme))
        .await;
    assert_eq!(own.status, StatusCode::OK);
    for (method, path) in [
        ("GET", format!("/api/v1/batch/status/{id}")),
        ("GET", format!("/api/v1/batch/results/{id}")),
        ("DELETE", format!("/api/v1/batch/jobs/{id}")),
    ] {
        let key = Some(umbrella.plaintext.as_str());
        let answer = match method {
            "GET" => api.get(&path, key).await,
            _ => api.delete(&path, key).await,
        };
        let detail = answer.problem(StatusCode::NOT_FOUND);
        assert!(detail.contains(id), "{method} {path}: {detail}");
    }
    // The job was not cancelled by the other tenant.
    let still = api.store.job("acme", &id.into()).await.unwrap().unwrap();
    assert_eq!(still.status.as_str(), "pending");

    // A revoked key stops working at once.
    assert!(api.store.revoke_key(&umbrella.key.id).await.unwrap());
    api.get("/api/v1/batch/queue/status", Some(&umbrella.plaintext))
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_key_created_while_running_makes_keys_required_for_good() {
    let api = start("late-key", |_| {}).await;
    let url = "/api/v1/batch/queue/status";
    let open = api.get(url, None).await;
    assert_eq!(open.status, StatusCode::OK, "no keys: open");
    let key = api.key("acme").await;
    // The store was asked a moment ago: within RECHECK the service has not noticed yet.
    assert_eq!(api.get(url, None).await.status, StatusCode::OK);
    api.clock.advance(RECHECK);
    api.get(url, None).await.problem(StatusCode::UNAUTHORIZED);
    assert_eq!(api.get(url, Some(&key)).await.status, StatusCode::OK);

    // Revoking every key does not open the service again: not at once, nor after another
    // re-check window, nor much later.
    let id = api.store.list_keys(None).await.unwrap()[0].id.clone();
    assert!(api.store.revoke_key(&id).await.unwrap());
    for wait in [Duration::ZERO, RECHECK, RECHECK * 30] {
        api.clock.advance(wait);
        api.get(url, None).await.problem(StatusCode::UNAUTHORIZED);
        api.get(url, Some(&key))
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn bad_input_on_batch_routes_is_problem_json() {
    let api = start("bad", |s| {
        s.max_body_bytes = 4096;
        s.max_texts = 10;
        s.max_text_chars = 100;
    })
    .await;
    let predict = "/api/v1/batch/predict";
    let json = Some("application/json");
    let raw = |body: &str| raw_post(predict, json, body);

    let d = api
        .send(raw("{\"texts\": ["))
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(d.contains("EOF") || d.contains("syntax"), "{d}");
    for (body, needle) in [
        ("{\"texts\": \"not a list\"}", "texts"),
        ("{\"texts\": [1, 2]}", "texts"),
        ("{\"texts\": [\"a\"], \"priority\": \"urgent\"}", "urgent"),
        ("{\"texts\": []}", "empty"),
    ] {
        let d = api
            .send(raw(body))
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(d.contains(needle), "{body}: {d}");
    }
    let eleven: Vec<&str> = vec!["x"; 11];
    let d = api
        .post(predict, None, &json!({ "texts": eleven }))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("11 texts") && d.contains("limit is 10"), "{d}");
    let d = api
        .post(predict, None, &json!({ "texts": ["ok", "y".repeat(101)] }))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("texts[1]") && d.contains("101"), "{d}");
    let d = api
        .post(predict, None, &json!({ "texts": ["z".repeat(5000)] }))
        .await
        .problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(d.contains("4096 bytes"), "{d}");
    let d = api
        .send(raw_post(predict, None, "{\"texts\": [\"a\"]}"))
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(d.contains("application/json"), "{d}");

    let d = api
        .get("/api/v1/batch/status/nope", None)
        .await
        .problem(StatusCode::NOT_FOUND);
    assert!(d.contains("nope"), "{d}");
    let d = api
        .get("/api/v1/batch/results/nope?page=x", None)
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(d.contains("page"), "{d}");
    // An id that is not UTF-8 after decoding.
    api.get("/api/v1/batch/status/%FF", None)
        .await
        .problem(StatusCode::BAD_REQUEST);
    // A page far past the end is empty, not an overflow; whole-number floats are numbers.
    let job = api
        .post(
            predict,
            None,
            &json!({"texts": ["a"], "timeout_seconds": 300.0, "max_batch_size": 100}),
        )
        .await
        .ok();
    let id = job["job_id"].as_str().unwrap();
    let far = api
        .get(
            &format!("/api/v1/batch/results/{id}?page=9223372036854775807&page_size=1000"),
            None,
        )
        .await
        .ok();
    assert_eq!(far["results"], json!([]));
    assert_eq!(far["has_more"], false);
    // Past int64 (the documented format) the page is refused.
    let d = api
        .get(
            &format!("/api/v1/batch/results/{id}?page=9223372036854775808"),
            None,
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("page"), "{d}");
}

#[tokio::test]
async fn each_tenant_is_rate_limited_on_its_own() {
    let api = start("rate", |s| {
        s.auth_required = true;
        s.tenant_rate = Some(TenantRate::with_clock(
            NonZeroU32::new(3).unwrap(),
            s.clock.clone(),
        ));
    })
    .await;
    let a = api.key("a").await;
    let b = api.key("b").await;
    let url = "/api/v1/batch/queue/status";
    for _ in 0..3 {
        assert_eq!(api.get(url, Some(&a)).await.status, StatusCode::OK);
    }
    // The clock stands still, so however slowly the requests ran, the fourth is one too many.
    let limited = api.get(url, Some(&a)).await;
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 1, "a third of a second, rounded up");
    let d = limited.problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(d.contains("3 requests per second"), "{d}");
    let other = api.get(url, Some(&b)).await;
    assert_eq!(other.status, StatusCode::OK, "b has its own budget");
    assert_eq!(
        api.get("/healthz", None).await.status,
        StatusCode::OK,
        "health is never limited"
    );
    // A third of a second later a's budget holds one request again, and only one.
    api.clock.advance(Duration::from_millis(334));
    assert_eq!(api.get(url, Some(&a)).await.status, StatusCode::OK);
    api.get(url, Some(&a))
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn submissions_over_a_tenants_queued_quota_get_429() {
    let dir = std::env::temp_dir().join(format!("ferry-guard-quota-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let options = ferry_store::StoreOptions::new().tenant_max_queued(NonZeroU64::new(5).unwrap());
    let path = dir.join("s.db");
    let store = ferry_store::open(path.to_str().unwrap(), None, options)
        .await
        .unwrap();
    let api = TestApp::over(store, None, |s| s.auth_required = true);
    let a = api.key("a").await;
    let b = api.key("b").await;
    let predict = "/api/v1/batch/predict";
    let three = json!({"texts": ["one", "two", "three"]});
    assert_eq!(
        api.post(predict, Some(&a), &three).await.status,
        StatusCode::OK
    );
    let refused = api.post(predict, Some(&a), &three).await;
    assert_eq!(refused.headers["retry-after"], "60", "nothing claimed yet");
    let d = refused.problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(d.contains("3 queued items and may have 5"), "{d}");
    assert_eq!(refused.json()["title"], "Quota Exceeded");
    // The same on /v1, and another tenant has its own quota.
    let job = json!({"handler": "sentiment", "items": ["x", "y", "z"]});
    api.post("/v1/jobs", Some(&a), &job)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        api.post(predict, Some(&b), &three).await.status,
        StatusCode::OK
    );
    // A job larger than the quota could never fit: 422, not 429.
    let six = json!({"texts": ["1", "2", "3", "4", "5", "6"]});
    let d = api
        .post(predict, Some(&b), &six)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("quota of 5 queued items"), "{d}");
}
