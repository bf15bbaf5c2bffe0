//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole HTTP API, generated with
//! utoipa from the handlers' own annotations ([`super::v1`], [`super::events`],
//! [`super::batch`], [`super::ops`] and this document's own route) and the shapes they
//! answer ([`super::shapes`]): what is described is what is sent.
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
//! - Not described: the WebSockets `ws/{job_id}` (OpenAPI cannot describe one) and the
//!   dashboard page.

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
use utoipa::{Modify, OpenApi};

use super::problem::ProblemBody;
use super::state::AppState;
use super::{batch, events, ops, v1};

/// The route serving the document.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
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
        // Any non-negative number (KubeSentiment's clients send integers), no `double` bound.
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
        ops::healthz, ops::readyz, document, ops::prometheus,
        v1::submit, v1::list, v1::job, v1::cancel, v1::results,
        events::job_events,
        v1::queues, v1::dead_letters, v1::redrive, v1::handlers,
        batch::predict, batch::status, batch::results, batch::cancel, batch::queue_status,
        batch::metrics,
    ),
    components(schemas(ProblemBody)),
    modifiers(&Security, &Problems),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "jobs", description = "`/v1` jobs: submit, follow, read results, cancel"),
        (name = "queues", description = "`/v1` queue depths"),
        (name = "dead letters", description = "`/v1` dead letters and their redrive"),
        (name = "batch", description = "The KubeSentiment-compatible sentiment batch API \
                                          (`/api/v1/batch/...`)"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    ),
)]
pub(super) struct ApiDoc;

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
