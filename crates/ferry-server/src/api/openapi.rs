//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole HTTP API, generated with
//! utoipa from the `/v1` handlers' own annotations (in [`super::v1`], [`super::events`]) and,
//! for the routes whose handlers live elsewhere (health, `/metrics`, seed 001's
//! `/api/v1/batch/...`), from placeholder functions here that describe their shapes.
//!
//! Decisions:
//!
//! - The document is **open** (no API key), like `/healthz`: it holds no tenant data, and
//!   clients and `schemathesis` read it before they have a key. It states this service's
//!   handler names (an `enum`) and limits (most items, texts, characters per text).
//! - Event streams follow OpenAPI 3.1 practice: the `text/event-stream` schema describes one
//!   event (`event`, and `data` as JSON with its `contentSchema`).
//! - utoipa 5 spells link fields in snake case; they are renamed to OpenAPI's camel case,
//!   so `schemathesis`' stateful phase follows `POST /v1/jobs` to the job's routes.
//! - Security: the schemes `bearer` (`Authorization: Bearer <key>`) and `api_key`
//!   (`X-API-Key: <key>`) apply to every operation but health and this document; a service
//!   started without keys simply does not ask for them.
//! - Every error is `application/problem+json` ([`ProblemBody`]). The statuses each operation
//!   can answer are added by [`Problems`] from what the operation takes, so no route forgets
//!   one: behind the key 401, 429 (the tenant's rate limit or a full queue, with
//!   `Retry-After`) and 500; with a body 400 (malformed JSON), 413 (over the size limit), 415
//!   (not JSON) and 422 (wrong shape or values); with query parameters 400 (does not parse)
//!   and 422 (out of range); with a path id 400 (does not decode) and 404 (no such job, or
//!   another tenant's).
//! - Not described: the seed's WebSocket `ws/{job_id}` (OpenAPI cannot describe one) and the
//!   dashboard page.

#![allow(dead_code)] // The placeholder functions and doc-only shapes are read by the macros.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::Ref;
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::v1;
use super::AppState;

/// The route serving the document.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

/// The document, with this service's handlers and limits.
async fn document(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(&Tuning::from(&state)).to_string(),
    )
}

/// What the document states about this service beyond the code: the handlers jobs may name
/// and the size limits.
#[derive(Debug, Clone)]
struct Tuning {
    handlers: Vec<String>,
    max_items: usize,
    max_texts: usize,
    max_text_chars: usize,
}

impl From<&AppState> for Tuning {
    fn from(state: &AppState) -> Self {
        Tuning {
            handlers: state.handlers.iter().cloned().collect(),
            max_items: state.max_items,
            max_texts: state.max_texts,
            max_text_chars: state.max_text_chars,
        }
    }
}

/// The document as JSON: utoipa's, with its link objects corrected, the event stream's
/// events described, and `tuning` filled in.
fn document_json(tuning: &Tuning) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    camel_case_links(&mut doc);
    if let Some(stream) = doc
        .pointer_mut("/paths/~1v1~1jobs~1{id}~1events/get/responses/200/content/text~1event-stream")
    {
        stream["schema"] = event_schema();
    }
    let schemas = &mut doc["components"]["schemas"];
    if let Some(submit) = schemas.pointer_mut("/SubmitJob/properties") {
        submit["handler"]["enum"] = json!(tuning.handlers);
        submit["items"]["maxItems"] = json!(tuning.max_items);
    }
    if let Some(predict) = schemas.pointer_mut("/PredictRequest/properties") {
        predict["texts"]["maxItems"] = json!(tuning.max_texts);
        predict["texts"]["items"]["maxLength"] = json!(tuning.max_text_chars);
        // Any non-negative number (the seed's clients send integers), no `double` bound.
        for field in ["timeout_seconds", "max_batch_size"] {
            if let Some(f) = predict[field].as_object_mut() {
                f.remove("format");
            }
        }
    }
    doc
}

/// One event of `/v1/jobs/{id}/events` as OpenAPI before 3.2 describes an event stream (the
/// media type's `schema` applies to each event): `progress` and `done` carry a job, `error`
/// a problem, both as JSON in `data`.
fn event_schema() -> Value {
    let data = |schema: &str| {
        json!({
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": { "$ref": format!("#/components/schemas/{schema}") },
        })
    };
    json!({
        "type": "object",
        "description": "One server-sent event: `progress` (the job, whenever it changes), \
                        `done` (the finished job; the stream then ends) or `error` (a problem; \
                        the stream then ends)",
        "required": ["event", "data"],
        "properties": {
            "event": { "type": "string", "enum": ["progress", "done", "error"] },
            "data": { "type": "string" },
        },
        "oneOf": [
            {
                "properties": {
                    "event": { "enum": ["progress", "done"] },
                    "data": data("Job"),
                },
            },
            {
                "properties": {
                    "event": { "const": "error" },
                    "data": data("Problem"),
                },
            },
        ],
    })
}

/// utoipa 5 writes a link object's fields in snake case (`operation_id`); OpenAPI spells them
/// `operationId`, `operationRef` and `requestBody`, and clients (schemathesis' stateful
/// tests) ignore links otherwise.
fn camel_case_links(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(links)) = map.get_mut("links") {
                for link in links.values_mut().filter_map(Value::as_object_mut) {
                    for (from, to) in [
                        ("operation_id", "operationId"),
                        ("operation_ref", "operationRef"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(v) = link.remove(from) {
                            link.insert(to.to_owned(), v);
                        }
                    }
                }
            }
            map.values_mut().for_each(camel_case_links);
        }
        Value::Array(items) => items.iter_mut().for_each(camel_case_links),
        _ => {}
    }
}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry",
        description = "Ferry's job service: submit batch jobs of any registered handler, follow \
                       their progress, read their results, manage queues and dead letters. \
                       Errors are `application/problem+json` (RFC 9457).",
    ),
    paths(
        healthz, readyz, openapi_json, prometheus,
        v1::submit, v1::list, v1::job, v1::cancel, v1::results,
        super::events::job_events,
        v1::queues, v1::dead_letters, v1::redrive, v1::handlers,
        seed_predict, seed_status, seed_results, seed_cancel, seed_queue_status, seed_metrics,
    ),
    components(schemas(ProblemBody)),
    modifiers(&Security, &Problems),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "jobs", description = "`/v1` jobs: submit, follow, read results, cancel"),
        (name = "queues", description = "`/v1` queue depths"),
        (name = "dead letters", description = "`/v1` dead letters and their redrive"),
        (name = "seed", description = "Seed 001's sentiment batch API, as the seed specifies it"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    ),
)]
pub(super) struct ApiDoc;

/// An error (RFC 9457), sent as `application/problem+json`.
#[derive(ToSchema)]
#[schema(as = Problem)]
pub(super) struct ProblemBody {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[schema(rename = "type", example = "about:blank")]
    kind: String,
    /// Short summary of the problem type.
    #[schema(example = "Not Found")]
    title: String,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599, example = 404)]
    status: u16,
    /// What exactly was wrong with this request.
    detail: String,
}

/// Declares the two ways to present an API key.
struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `ferry keys create`, as `Authorization: Bearer <key>`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key from `ferry keys create`, as `X-API-Key: <key>`",
            ))),
        );
    }
}

/// Adds the problem responses every operation can give (see the module docs).
struct Problems;

/// The reusable problem responses: name, status, description, whether with `Retry-After`.
const PROBLEMS: [(&str, &str, &str, bool); 9] = [
    (
        "BadRequest",
        "400",
        "Malformed: JSON that does not parse, a query or path that does not decode, a bad header",
        false,
    ),
    (
        "Unauthorized",
        "401",
        "No API key, or an unknown or revoked one",
        false,
    ),
    (
        "NotFound",
        "404",
        "No such job (another tenant's jobs are not found either)",
        false,
    ),
    (
        "PayloadTooLarge",
        "413",
        "The body is larger than the service's limit (in the detail)",
        false,
    ),
    (
        "UnsupportedMediaType",
        "415",
        "The body is not sent as `Content-Type: application/json`",
        false,
    ),
    (
        "Invalid",
        "422",
        "Well-formed, but a field has the wrong type or an invalid value",
        false,
    ),
    (
        "TooManyRequests",
        "429",
        "The tenant's request rate limit, or a full queue: retry after `Retry-After` seconds",
        true,
    ),
    (
        "InternalError",
        "500",
        "The server failed (the cause is in its log, never in the answer)",
        false,
    ),
    ("Unavailable", "503", "The store is unreachable", true),
];

impl Modify for Problems {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        for (name, _, description, retry) in PROBLEMS {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            );
            if retry {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Object::with_type(Type::Integer))
                        .description(Some("Seconds to wait before retrying"))
                        .build(),
                );
            }
            components.responses.insert(name.into(), response.into());
        }
        for item in api.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_problems(op);
            }
        }
    }
}

/// The problem statuses `op` can answer, added where it does not describe them itself.
fn add_problems(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| {
        params
            .iter()
            .any(|p| p.parameter_in == place && p.name != "api_key")
    };
    // `api_key` is read by the key check, not parsed by the handler: no 400 or 422 of its own.
    let (query, path) = (has(ParameterIn::Query), has(ParameterIn::Path));
    // Operations without their own `security` inherit the document's: the key is required.
    let guarded = op.security.is_none();
    let mut wanted: Vec<&str> = Vec::new();
    if guarded {
        wanted.extend(["401", "429", "500"]);
    }
    if op.request_body.is_some() {
        wanted.extend(["400", "413", "415", "422"]);
    }
    if query {
        wanted.extend(["400", "422"]);
    }
    if path {
        wanted.extend(["400", "404"]);
    }
    for status in wanted {
        if let Some((name, ..)) = PROBLEMS.iter().find(|p| p.1 == status) {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| Ref::from_response_name(*name).into());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Health and operations (handlers in `super`)

/// A health answer.
#[derive(ToSchema)]
struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(example = "ok")]
    status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", operation_id = "healthz", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
fn healthz() {}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", operation_id = "readyz", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The store is unreachable", body = ProblemBody,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ))]
fn readyz() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
fn openapi_json() {}

/// The engines' metrics in Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain",
         body = String),
        (status = 404, description = "Metrics are not enabled on this server",
         body = ProblemBody, content_type = "application/problem+json"),
    ))]
fn prometheus() {}

// ---------------------------------------------------------------------------------------
// Seed 001 (`super::seed`): its routes and JSON shapes

/// A seed job's priority.
#[derive(ToSchema, serde::Deserialize)]
#[schema(as = SeedPriority, rename_all = "lowercase")]
enum SeedPriorityName {
    High,
    Medium,
    Low,
}

/// A seed job's status.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
enum SeedStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

/// `POST /api/v1/batch/predict`: texts to classify. Unknown fields are 422.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest {
    /// 1 to 1,000 texts (the service's `max_texts`), each at most 10,000 characters.
    #[schema(min_items = 1)]
    texts: Vec<String>,
    /// Queue priority (default `medium`).
    priority: Option<SeedPriorityName>,
    /// Accepted and ignored.
    #[schema(minimum = 0)]
    timeout_seconds: Option<f64>,
    /// Accepted and ignored.
    #[schema(minimum = 0)]
    max_batch_size: Option<f64>,
}

/// The job `predict` created.
#[derive(ToSchema)]
struct PredictResponse {
    job_id: String,
    status: SeedStatus,
    total_texts: u64,
    estimated_completion_seconds: u64,
    created_at: f64,
    priority: SeedPriorityName,
    progress_percentage: f64,
}

/// A seed job's status.
#[derive(ToSchema)]
struct SeedJobStatus {
    job_id: String,
    status: SeedStatus,
    total_texts: u64,
    /// Texts that ended, succeeded or failed.
    processed_texts: u64,
    failed_texts: u64,
    progress_percentage: f64,
    created_at: f64,
    started_at: Option<f64>,
    completed_at: Option<f64>,
    estimated_completion_seconds: u64,
    priority: SeedPriorityName,
    error: Option<String>,
}

/// Counts over a seed job's results.
#[derive(ToSchema)]
struct SeedSummary {
    total_texts: u64,
    successful_predictions: u64,
    failed_predictions: u64,
    success_rate: f64,
    /// Results per label (`POSITIVE`, `NEGATIVE`, `NEUTRAL`, ...).
    sentiment_distribution: BTreeMap<String, u64>,
    average_confidence: f64,
}

/// One page of a seed job's results.
#[derive(ToSchema)]
struct SeedResults {
    job_id: String,
    /// One per text in order: the model's result, or `{"error": ...}`.
    results: Vec<Value>,
    total_results: u64,
    page: u64,
    page_size: u64,
    has_more: bool,
    summary: SeedSummary,
}

/// `page` (from 1) and `page_size` (1 to 1,000, default 100).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct SeedPaging {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    page: Option<u64>,
    /// Results per page, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<u64>,
}

/// One priority's queue in `queue/status`.
#[derive(ToSchema)]
struct SeedQueue {
    jobs: u64,
    limit: u64,
    utilization: f64,
    queued_texts: u64,
    processing_texts: u64,
}

/// `queue/status`: the queues by priority name.
#[derive(ToSchema)]
struct SeedQueues {
    /// Keys `high`, `medium`, `low`.
    queues: BTreeMap<String, SeedQueue>,
    total_jobs: u64,
}

/// The engine counters in `metrics`.
#[derive(ToSchema)]
struct SeedEngine {
    calls: u64,
    retries: u64,
    timeouts: u64,
    items_succeeded: u64,
    items_dead_lettered: u64,
    items_cancelled: u64,
}

/// `metrics`: the tenant's job figures and the service's queues (see `docs/service.md`).
#[derive(ToSchema)]
struct SeedMetrics {
    total_jobs: u64,
    truncated: bool,
    active_jobs: u64,
    jobs_by_status: BTreeMap<String, u64>,
    jobs_by_priority: BTreeMap<String, u64>,
    total_texts: u64,
    processed_texts: u64,
    successful_texts: u64,
    failed_texts: u64,
    success_rate: f64,
    average_processing_time_seconds: f64,
    average_queue_wait_seconds: f64,
    average_end_to_end_seconds: f64,
    throughput_tps: f64,
    queue_size: u64,
    queued_texts: u64,
    processing_texts: u64,
    queues: BTreeMap<String, SeedQueue>,
    engine: Option<SeedEngine>,
}

/// Submits texts for sentiment analysis.
#[utoipa::path(post, path = "/api/v1/batch/predict", tag = "seed", operation_id = "seed_predict",
    request_body = PredictRequest,
    responses((status = 200, description = "The job was created", body = PredictResponse,
        links(("SeedStatus" = (operation_id = "seed_status",
                               parameters(("job_id" = "$response.body#/job_id"))))))))]
fn seed_predict() {}

/// A seed job's status.
#[utoipa::path(get, path = "/api/v1/batch/status/{job_id}", tag = "seed",
    operation_id = "seed_status",
    params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job's status", body = SeedJobStatus)))]
fn seed_status() {}

/// A seed job's results, paged.
#[utoipa::path(get, path = "/api/v1/batch/results/{job_id}", tag = "seed",
    operation_id = "seed_results",
    params(("job_id" = String, Path, description = "The job's id"), SeedPaging),
    responses((status = 200, description = "One page of results", body = SeedResults)))]
fn seed_results() {}

/// Cancels a seed job.
#[utoipa::path(delete, path = "/api/v1/batch/jobs/{job_id}", tag = "seed",
    operation_id = "seed_cancel",
    params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job's status after cancelling",
               body = SeedJobStatus)))]
fn seed_cancel() {}

/// The queues by priority.
#[utoipa::path(get, path = "/api/v1/batch/queue/status", tag = "seed",
    operation_id = "seed_queue_status",
    responses((status = 200, description = "Queue depths", body = SeedQueues)))]
fn seed_queue_status() {}

/// Performance metrics.
#[utoipa::path(get, path = "/api/v1/batch/metrics", tag = "seed", operation_id = "seed_metrics",
    responses((status = 200, description = "Job, queue and engine figures", body = SeedMetrics)))]
fn seed_metrics() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_its_problems() {
        let doc = document_json(&Tuning {
            handlers: vec!["echo".into(), "sentiment".into()],
            max_items: 7,
            max_texts: 5,
            max_text_chars: 9,
        });
        let submit = &doc["components"]["schemas"]["SubmitJob"]["properties"];
        assert_eq!(submit["handler"]["enum"], json!(["echo", "sentiment"]));
        assert_eq!(submit["items"]["maxItems"], 7);
        let texts = &doc["components"]["schemas"]["PredictRequest"]["properties"]["texts"];
        assert_eq!(
            (&texts["maxItems"], &texts["items"]["maxLength"]),
            (&json!(5), &json!(9))
        );
        let events = &doc["paths"]["/v1/jobs/{id}/events"]["get"]["responses"]["200"]["content"];
        assert_eq!(
            events["text/event-stream"]["schema"]["required"],
            json!(["event", "data"])
        );
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/healthz",
            "/readyz",
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/results",
            "/v1/jobs/{id}/events",
            "/v1/queues",
            "/v1/dead-letters",
            "/v1/dead-letters/redrive",
            "/api/v1/batch/predict",
            "/api/v1/batch/status/{job_id}",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        let submit = &paths["/v1/jobs"]["post"]["responses"];
        for status in ["200", "201", "400", "401", "413", "415", "422", "429"] {
            assert!(submit.get(status).is_some(), "submit lacks {status}");
        }
        assert_eq!(
            paths["/v1/jobs/{id}"]["get"]["responses"]["404"]["$ref"],
            "#/components/responses/NotFound"
        );
        assert!(paths["/healthz"]["get"]["responses"].get("401").is_none());
        let link = &paths["/v1/jobs"]["post"]["responses"]["201"]["links"]["GetJob"];
        assert_eq!(link["operationId"], "get_job", "{link}");
        assert!(link.get("operation_id").is_none());
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));
        assert_eq!(
            doc["components"]["schemas"]["Problem"]["required"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
    }
}
