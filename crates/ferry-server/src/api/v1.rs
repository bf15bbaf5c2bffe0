//! The `/v1` REST API: jobs of any registered handler, their results, live progress (SSE, in
//! [`super::events`]), the queues and the dead letters. Every body is JSON, every error
//! `application/problem+json`; `/openapi.json` describes it all. The
//! JSON shapes are in [`super::shapes::job`] and [`super::shapes::request`].
//!
//! Decisions:
//!
//! - **Items.** `POST /v1/jobs` takes `items` as an array whose elements are either
//!   `{"payload": <any>}` / `{"key": "<string>", "payload": <any>}` (an object whose only
//!   members are `payload` and, optionally, `key`), or any other JSON value, which is the
//!   payload itself. A payload that is itself such an object must be wrapped
//!   (`{"payload": {"payload": 1}}`). An item without a key is keyed by its index (`"0"`,
//!   `"1"`, …); keys must be unique within the job (an explicit `"1"` collides with the
//!   second item's default key), duplicates are 422 naming them.
//! - **Validation.** An unknown handler is 422 listing the known ones ([`AppState::handlers`]);
//!   no items is 422; more than [`AppState::max_items`] is 422 with the limit in the detail
//!   (422, not 413, as the batch API's `predict` answers too many texts: 413 is kept for a body
//!   over [`AppState::max_body_bytes`]); unknown body fields are 422; `params`, when given,
//!   must be an object (`{}` when omitted).
//! - **Idempotency.** An `Idempotency-Key` header (1 to 255 visible ASCII characters, else
//!   400) makes the submission safe to retry: a second submission with the same key (same
//!   tenant) returns the first job as it is now, whatever its body, with 200; a new job is
//!   201 Created with a `Location` header (the store says which: `Store::submit_job`).
//! - **Paging.** Listings take `limit` (1 to 1000, default 100) and `cursor` (a previous
//!   page's `next_cursor`, opaque); `next_cursor` is `null` on the last page. A query that
//!   does not parse is 400; a value out of range 422.
//! - **Tenants.** Every read and write goes through the caller's [`Tenant`]: another tenant's
//!   job (or dead letter) is 404 exactly like one that does not exist.
//! - **Cancel.** `DELETE /v1/jobs/{id}` answers 200 with the job; cancelling a finished job
//!   changes nothing and answers it as it is.
//! - **Redrive.** `POST /v1/dead-letters/redrive` takes 1 to 10,000 item ids and answers how
//!   many were queued again; ids that are not the tenant's dead letters are skipped. An id
//!   written `7.0` is 7, as JSON Schema's `integer` has it.

use std::collections::{BTreeSet, HashSet};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_store::NewJob;
use serde_json::Value;

use super::body::JsonBody;
use super::lookup::{find, no_job};
use super::path::IdPath;
use super::problem::{Problem, ProblemBody};
use super::shapes::job::{
    DeadItem, DeadLetterPage, HandlerList, ItemResult, Job, JobPage, Queue, Queues, Redriven,
    ResultPage,
};
use super::shapes::request::{Paging, RedriveRequest, SubmitJob};
use super::state::AppState;
use super::tenant::Tenant;

/// Longest `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Most duplicate keys a 422 names.
const NAMED_DUPLICATES: usize = 10;

/// The `/v1` routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(job).delete(cancel))
        .route("/v1/jobs/{id}/results", get(results))
        .route("/v1/jobs/{id}/events", get(super::events::job_events))
        .route("/v1/jobs/{id}/ws", get(super::ws::job_feed))
        .route("/v1/queues", get(queues))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/redrive", post(redrive))
        .route("/v1/handlers", get(handlers))
}

/// The `Idempotency-Key` header, if any, or 400 when it is malformed.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// Checks a submission against the service's limits and turns it into a [`NewJob`].
fn new_job(
    state: &AppState,
    tenant: Tenant,
    req: SubmitJob,
    idempotency_key: Option<String>,
) -> Result<NewJob, Problem> {
    if !state.handlers.contains(&req.handler) {
        let known: Vec<&str> = state.handlers.iter().map(String::as_str).collect();
        return Err(Problem::invalid(format!(
            "unknown handler `{}`; known handlers: {}",
            req.handler,
            known.join(", ")
        )));
    }
    if req.items.is_empty() {
        return Err(Problem::invalid("`items` is empty: send at least one item"));
    }
    if req.items.len() > state.max_items {
        return Err(Problem::invalid(format!(
            "`items` holds {} items; the limit is {} per job",
            req.items.len(),
            state.max_items
        )));
    }
    let items = req
        .items
        .into_iter()
        .enumerate()
        .map(|(i, item)| item.into_item(i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::with_capacity(items.len());
    let duplicates: BTreeSet<&str> = items
        .iter()
        .filter(|item| !seen.insert(item.key.as_str()))
        .map(|item| item.key.as_str())
        .collect();
    if !duplicates.is_empty() {
        let named: Vec<String> = duplicates
            .iter()
            .take(NAMED_DUPLICATES)
            .map(|k| format!("{k:?}"))
            .collect();
        let more = duplicates.len().saturating_sub(NAMED_DUPLICATES);
        return Err(Problem::invalid(format!(
            "item keys must be unique within a job; duplicated: {}{}",
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )));
    }
    Ok(NewJob {
        tenant: tenant.0,
        handler: req.handler,
        params: Value::Object(req.params.unwrap_or_default()),
        priority: req.priority.unwrap_or_default(),
        items,
        idempotency_key,
        limits: ferry_store::JobLimits::default(),
    })
}

// ---------------------------------------------------------------------------------------
// Handlers

/// Submits a job.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs", operation_id = "submit_job",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        description = "Makes the submission safe to retry: a second submission with the same \
                       key (1 to 255 visible ASCII characters) returns the first job, with 200 \
                       instead of 201.")),
    request_body = SubmitJob,
    responses(
        (status = 201, description = "The job was created", body = Job,
         headers(("Location" = String, description = "The job's URL")),
         links(
            ("GetJob" = (operation_id = "get_job", parameters(("id" = "$response.body#/id")))),
            ("GetResults" = (operation_id = "job_results", parameters(("id" = "$response.body#/id")))),
            ("CancelJob" = (operation_id = "cancel_job", parameters(("id" = "$response.body#/id")))),
         )),
        (status = 200, description = "A job with this `Idempotency-Key` already existed; it is \
                                      returned as it is", body = Job),
        (status = 422, description = "Unknown handler, no items, too many items (the limit is \
                                      in the detail), duplicate item keys, or a field of the \
                                      wrong type", body = ProblemBody,
         content_type = "application/problem+json"),
    ),
)]
pub(super) async fn submit(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SubmitJob>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let job = new_job(&state, tenant, req, key)?;
    let submitted = state.store.submit_job(job).await?;
    let view = Json(Job::from(&submitted.job));
    if !submitted.created {
        return Ok((StatusCode::OK, view).into_response());
    }
    let location = format!("/v1/jobs/{}", submitted.job.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], view).into_response())
}

/// Lists the caller's jobs, newest first.
#[utoipa::path(
    get, path = "/v1/jobs", tag = "jobs", operation_id = "list_jobs",
    params(Paging),
    responses((status = 200, description = "One page of jobs", body = JobPage)),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<JobPage>, Problem> {
    let (limit, cursor) = Paging::parse(query)?;
    let page = state
        .store
        .list_jobs(tenant.as_str(), limit, cursor)
        .await?;
    Ok(Json(JobPage {
        items: page.items.iter().map(Job::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One job.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "get_job",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = Job)),
)]
pub(super) async fn job(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
) -> Result<Json<Job>, Problem> {
    Ok(Json(Job::from(&find(&state, &tenant, &id).await?)))
}

/// Cancels a job: queued items end cancelled, items in flight finish as their worker reports.
#[utoipa::path(
    delete, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "cancel_job",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job after cancelling (a finished job is \
                                            unchanged)", body = Job)),
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
) -> Result<Json<Job>, Problem> {
    let job = state
        .store
        .cancel_job(tenant.as_str(), &id)
        .await?
        .ok_or_else(|| no_job(&id))?;
    Ok(Json(Job::from(&job)))
}

/// A job's items with their results or errors, in item order.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/results", tag = "jobs", operation_id = "job_results",
    params(("id" = String, Path, description = "The job's id"), Paging),
    responses((status = 200, description = "One page of the job's items", body = ResultPage)),
)]
pub(super) async fn results(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<ResultPage>, Problem> {
    let (limit, cursor) = Paging::parse(query)?;
    let page = state
        .store
        .results(tenant.as_str(), &id, cursor, limit)
        .await?
        .ok_or_else(|| no_job(&id))?;
    Ok(Json(ResultPage {
        job_id: id.to_string(),
        items: page.items.into_iter().map(ItemResult::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The queues (every tenant's jobs), high priority first.
#[utoipa::path(
    get, path = "/v1/queues", tag = "queues", operation_id = "queues",
    responses((status = 200, description = "One entry per priority", body = Queues)),
)]
pub(super) async fn queues(State(state): State<AppState>) -> Result<Json<Queues>, Problem> {
    let depths = state.store.queue_depths().await?;
    Ok(Json(Queues {
        queues: depths.iter().map(Queue::from).collect(),
    }))
}

/// The caller's dead letters, newest first.
#[utoipa::path(
    get, path = "/v1/dead-letters", tag = "dead letters", operation_id = "dead_letters",
    params(Paging),
    responses((status = 200, description = "One page of dead letters", body = DeadLetterPage)),
)]
pub(super) async fn dead_letters(
    State(state): State<AppState>,
    tenant: Tenant,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, Problem> {
    let (limit, cursor) = Paging::parse(query)?;
    let page = state
        .store
        .dead_letters(tenant.as_str(), limit, cursor)
        .await?;
    Ok(Json(DeadLetterPage {
        items: page.items.into_iter().map(DeadItem::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Queues dead letters again, their attempts reset.
#[utoipa::path(
    post, path = "/v1/dead-letters/redrive", tag = "dead letters", operation_id = "redrive",
    request_body = RedriveRequest,
    responses(
        (status = 200, description = "How many were queued again", body = Redriven),
        (status = 422, description = "No ids, more than 10,000, or a field of the wrong type",
         body = ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(super) async fn redrive(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(req): JsonBody<RedriveRequest>,
) -> Result<Json<Redriven>, Problem> {
    let ids = req.ids()?;
    let redriven = state.store.redrive(tenant.as_str(), ids).await?;
    Ok(Json(Redriven { redriven }))
}

/// The handlers jobs may name.
#[utoipa::path(
    get, path = "/v1/handlers", tag = "jobs", operation_id = "handlers",
    responses((status = 200, description = "The handler names", body = HandlerList)),
)]
pub(super) async fn handlers(State(state): State<AppState>) -> Json<HandlerList> {
    Json(HandlerList {
        handlers: state.handlers.iter().cloned().collect(),
    })
}
