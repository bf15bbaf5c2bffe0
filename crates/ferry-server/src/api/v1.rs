//! The `/v1` REST API: jobs of any registered handler, their results, live progress (SSE, in
//! [`super::events`]), the queues and the dead letters. Every body is JSON, every error
//! `application/problem+json`; `/openapi.json` describes it all (see [`super::openapi`]).
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
//!   (422, not 413, as the seed's `predict` answers too many texts: 413 is kept for a body
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
use ferry_store::{
    DeadLetter, ItemStatus, JobId, JobRecord, JobStatus, NewItem, NewJob, Priority, QueueDepth,
    ResultRow,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::path::IdPath;
use super::{AppState, JsonBody, Problem, Tenant};

/// Default page size of every listing.
const DEFAULT_LIMIT: u64 = 100;
/// Largest page size of every listing.
const MAX_LIMIT: u64 = 1000;
/// Most item ids one redrive takes.
const MAX_REDRIVE: usize = 10_000;
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

// ---------------------------------------------------------------------------------------
// Shapes

/// A job's queue priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Priority)]
pub(super) enum PriorityName {
    /// Claimed first: 4/7 of every claim.
    High,
    /// 2/7 of every claim; the default.
    Medium,
    /// 1/7 of every claim, never starved.
    Low,
}

impl From<PriorityName> for Priority {
    fn from(p: PriorityName) -> Self {
        match p {
            PriorityName::High => Priority::High,
            PriorityName::Medium => Priority::Medium,
            PriorityName::Low => Priority::Low,
        }
    }
}

impl From<Priority> for PriorityName {
    fn from(p: Priority) -> Self {
        match p {
            Priority::High => PriorityName::High,
            Priority::Medium => PriorityName::Medium,
            Priority::Low => PriorityName::Low,
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = JobStatus)]
pub(super) enum JobState {
    /// No item claimed yet.
    Pending,
    /// Some item claimed, some not ended.
    Processing,
    /// Every item ended and at least one succeeded.
    Completed,
    /// Every item was dead-lettered.
    Failed,
    /// Cancelled by the client.
    Cancelled,
}

impl From<JobStatus> for JobState {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Pending => JobState::Pending,
            JobStatus::Processing => JobState::Processing,
            JobStatus::Completed => JobState::Completed,
            JobStatus::Failed => JobState::Failed,
            JobStatus::Cancelled => JobState::Cancelled,
        }
    }
}

/// Where one item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ItemStatus)]
pub(super) enum ItemState {
    /// Waiting to be claimed (possibly after a failed attempt).
    Queued,
    /// Leased to a worker.
    Processing,
    /// Its result is recorded.
    Succeeded,
    /// Dead-lettered.
    Failed,
    /// Its job was cancelled before it ended.
    Cancelled,
}

impl From<ItemStatus> for ItemState {
    fn from(s: ItemStatus) -> Self {
        match s {
            ItemStatus::Queued => ItemState::Queued,
            ItemStatus::Processing => ItemState::Processing,
            ItemStatus::Succeeded => ItemState::Succeeded,
            ItemStatus::Failed => ItemState::Failed,
            ItemStatus::Cancelled => ItemState::Cancelled,
        }
    }
}

/// `POST /v1/jobs`: a job to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SubmitJob {
    /// The handler that processes the items (see `GET /v1/handlers`).
    #[schema(example = "echo")]
    handler: String,
    /// The items, in the order results are reported: each `{"key"?: string, "payload": any}`
    /// or a bare payload (keyed by its index).
    #[schema(min_items = 1)]
    items: Vec<ItemInput>,
    /// Parameters for the handler (default `{}`).
    #[serde(default)]
    params: Option<Map<String, Value>>,
    /// Queue priority (default `medium`).
    #[serde(default)]
    priority: Option<PriorityName>,
}

/// One item of a submitted job: `{"key"?: string, "payload": any}`, or any other JSON value
/// as the payload itself (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(super) struct ItemInput(Value);

/// The explicit form of an item (documentation only; parsed by [`ItemInput::into_item`]).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct KeyedItem {
    /// Unique within the job (default: the item's index).
    key: Option<String>,
    /// What the handler receives.
    payload: Value,
}

impl utoipa::PartialSchema for ItemInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, Object, SchemaType};
        AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("KeyedItem"))
            .item(Object::with_type(SchemaType::AnyValue))
            .description(Some(
                "`{\"key\"?: string, \"payload\": any}` (an object with only those members), \
                 or any other JSON value as the payload itself, keyed by its index",
            ))
            .into()
    }
}

impl ToSchema for ItemInput {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "KeyedItem".into(),
            <KeyedItem as utoipa::PartialSchema>::schema(),
        ));
    }
}

impl ItemInput {
    /// The item at `index`: its key (the index by default) and payload.
    fn into_item(self, index: usize) -> Result<NewItem, Problem> {
        let default_key = || index.to_string();
        match self.0 {
            Value::Object(mut map)
                if map.contains_key("payload")
                    && map.keys().all(|k| k == "payload" || k == "key") =>
            {
                let payload = map.remove("payload").unwrap_or(Value::Null);
                let key = match map.remove("key") {
                    None | Some(Value::Null) => default_key(),
                    Some(Value::String(k)) => k,
                    Some(other) => {
                        return Err(Problem::invalid(format!(
                            "`items[{index}].key` must be a string, not {}",
                            kind(&other)
                        )))
                    }
                };
                Ok(NewItem { key, payload })
            }
            payload => Ok(NewItem {
                key: default_key(),
                payload,
            }),
        }
    }
}

/// A JSON value's type, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A job's item counts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct Counts {
    /// Items in the job.
    total: u64,
    /// Items whose result is recorded.
    succeeded: u64,
    /// Items dead-lettered.
    failed: u64,
    /// Items cancelled with the job.
    cancelled: u64,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(super) struct Job {
    /// Identifier (a UUID).
    id: String,
    /// The handler that processes its items.
    handler: String,
    /// Queue priority.
    priority: PriorityName,
    /// Where it stands.
    status: JobState,
    /// Item counts.
    counts: Counts,
    /// Percentage of items that ended (succeeded, failed or cancelled), `0.0` to `100.0`.
    progress: f64,
    /// When it was created (seconds since the Unix epoch).
    created_at: f64,
    /// When its first item was claimed.
    started_at: Option<f64>,
    /// When its last item ended, or when it was cancelled.
    completed_at: Option<f64>,
    /// The handler parameters as submitted (`null` for jobs submitted by the seed's
    /// `predict`).
    params: Value,
    /// Why it failed, for a failed job.
    error: Option<String>,
}

impl Job {
    /// Whether the job will not change any more (short of a redrive).
    pub(super) fn is_finished(&self) -> bool {
        matches!(
            self.status,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl From<&JobRecord> for Job {
    fn from(j: &JobRecord) -> Self {
        let ended = j.succeeded + j.failed + j.cancelled;
        let progress = if j.total == 0 {
            100.0
        } else {
            (ended as f64 * 1000.0 / j.total as f64).round() / 10.0
        };
        Job {
            id: j.id.to_string(),
            handler: j.handler.clone(),
            priority: j.priority.into(),
            status: j.status.into(),
            counts: Counts {
                total: j.total,
                succeeded: j.succeeded,
                failed: j.failed,
                cancelled: j.cancelled,
            },
            progress,
            created_at: j.created_at,
            started_at: j.started_at,
            completed_at: j.completed_at,
            params: j.params.clone(),
            error: j.error.clone(),
        }
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobPage {
    /// The jobs.
    items: Vec<Job>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<i64>,
}

/// One item of a job with its outcome.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ItemResult {
    /// The item's identifier (what a redrive takes).
    item_id: i64,
    /// The item's key.
    key: String,
    /// Where it stands.
    status: ItemState,
    /// The handler's result, for a succeeded item.
    result: Option<Value>,
    /// The dead-letter reason of a failed item, or why the last attempt of a queued one
    /// failed.
    error: Option<String>,
}

impl From<ResultRow> for ItemResult {
    fn from(r: ResultRow) -> Self {
        ItemResult {
            item_id: r.item_id,
            key: r.key,
            status: r.status.into(),
            result: r.result,
            error: r.error,
        }
    }
}

/// One page of a job's items, in item order.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ResultPage {
    /// The job.
    job_id: String,
    /// Its items.
    items: Vec<ItemResult>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<i64>,
}

/// One priority's queue.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Queue {
    /// The priority.
    priority: PriorityName,
    /// Jobs pending or processing (every tenant's).
    unfinished_jobs: u64,
    /// The most unfinished jobs it holds; submissions beyond are 429.
    limit: u64,
    /// Items waiting to be claimed.
    queued_items: u64,
    /// Items leased to workers.
    in_flight_items: u64,
}

impl From<&QueueDepth> for Queue {
    fn from(d: &QueueDepth) -> Self {
        Queue {
            priority: d.priority.into(),
            unfinished_jobs: d.unfinished_jobs,
            limit: d.limit,
            queued_items: d.queued_items,
            in_flight_items: d.in_flight_items,
        }
    }
}

/// The queues, high priority first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Queues {
    /// One per priority.
    queues: Vec<Queue>,
}

/// A dead-lettered item.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadItem {
    /// The item's identifier (what a redrive takes).
    item_id: i64,
    /// Its job.
    job_id: String,
    /// Its key.
    key: String,
    /// Its payload.
    payload: Value,
    /// Why it was dead-lettered.
    error: String,
    /// Attempts made.
    attempts: u32,
    /// When it was dead-lettered (seconds since the Unix epoch).
    dead_at: f64,
}

impl From<DeadLetter> for DeadItem {
    fn from(d: DeadLetter) -> Self {
        DeadItem {
            item_id: d.item_id,
            job_id: d.job_id.to_string(),
            key: d.key,
            payload: d.payload,
            error: d.error,
            attempts: d.attempts,
            dead_at: d.dead_at,
        }
    }
}

/// One page of dead letters, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadLetterPage {
    /// The dead letters.
    items: Vec<DeadItem>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<i64>,
}

/// `POST /v1/dead-letters/redrive`: dead letters to queue again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RedriveRequest {
    /// Item ids from `GET /v1/dead-letters` (1 to 10,000).
    #[schema(value_type = Vec<i64>, min_items = 1, max_items = 10000)]
    item_ids: Vec<serde_json::Number>,
}

impl RedriveRequest {
    /// The ids as integers: JSON Schema counts `7.0` as the integer 7, and so does this.
    fn ids(self) -> Result<Vec<i64>, Problem> {
        if self.item_ids.is_empty() || self.item_ids.len() > MAX_REDRIVE {
            return Err(Problem::invalid(format!(
                "`item_ids` holds {} ids; send 1 to {MAX_REDRIVE}",
                self.item_ids.len()
            )));
        }
        self.item_ids
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(|| {
                        Problem::invalid(format!(
                            "`item_ids[{i}]` is {n}, not a 64-bit integer item id"
                        ))
                    })
            })
            .collect()
    }
}

/// How many dead letters were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Redriven {
    /// Items queued again (ids that are not the tenant's dead letters are skipped).
    redriven: u64,
}

/// The handlers jobs may name.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct HandlerList {
    /// Their names, sorted.
    handlers: Vec<String>,
}

/// The headers `POST /v1/jobs` reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Documentation only: the handler reads the header itself.
pub(super) struct SubmitHeaders {
    /// Makes the submission safe to retry: a second submission with the same key (1 to 255
    /// visible ASCII characters) returns the first job, with 200 instead of 201.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
}

/// `limit` and `cursor` of every listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Paging {
    /// Rows per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// A previous page's `next_cursor` (omit for the first page).
    cursor: Option<i64>,
}

impl Paging {
    /// The parsed query, or the problem with it.
    pub(super) fn parse(
        query: Result<Query<Paging>, QueryRejection>,
    ) -> Result<(usize, Option<i64>), Problem> {
        let Query(paging) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let limit = paging.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::invalid(format!(
                "`limit` is {limit}; it must lie between 1 and {MAX_LIMIT}"
            )));
        }
        Ok((limit as usize, paging.cursor))
    }
}

// ---------------------------------------------------------------------------------------
// Helpers shared with the SSE feed

/// The tenant's job, or 404.
pub(super) async fn find(
    state: &AppState,
    tenant: &Tenant,
    id: &JobId,
) -> Result<JobRecord, Problem> {
    state
        .store
        .job(tenant.as_str(), id)
        .await?
        .ok_or_else(|| no_job(id))
}

pub(super) fn no_job(id: &JobId) -> Problem {
    Problem::not_found(format!("no job `{id}`"))
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
        priority: req.priority.map_or(Priority::Medium, Priority::from),
        items,
        idempotency_key,
    })
}

// ---------------------------------------------------------------------------------------
// Handlers

/// Submits a job.
#[utoipa::path(
    post, path = "/v1/jobs", tag = "jobs", operation_id = "submit_job",
    params(SubmitHeaders),
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
                                      wrong type", body = super::openapi::ProblemBody,
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
         body = super::openapi::ProblemBody, content_type = "application/problem+json"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value, i: usize) -> Result<NewItem, Problem> {
        ItemInput(v).into_item(i)
    }

    #[test]
    fn items_are_keyed_objects_or_bare_payloads() {
        let keyed = item(json!({"key": "a", "payload": [1]}), 3).unwrap();
        assert_eq!((keyed.key.as_str(), keyed.payload), ("a", json!([1])));
        let unkeyed = item(json!({"payload": "x"}), 3).unwrap();
        assert_eq!((unkeyed.key.as_str(), unkeyed.payload), ("3", json!("x")));
        // Anything else is the payload itself.
        for bare in [
            json!("text"),
            json!(5),
            json!({"payload": 1, "other": 2}),
            json!({}),
        ] {
            let got = item(bare.clone(), 0).unwrap();
            assert_eq!((got.key.as_str(), got.payload), ("0", bare));
        }
        let bad = item(json!({"key": 7, "payload": 1}), 2).unwrap_err();
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.detail.contains("items[2].key"), "{}", bad.detail);
    }

    #[test]
    fn paging_defaults_and_bounds() {
        let parse = |limit, cursor| Paging::parse(Ok(Query(Paging { limit, cursor })));
        assert_eq!(parse(None, None).unwrap(), (100, None));
        assert_eq!(parse(Some(1000), Some(-4)).unwrap(), (1000, Some(-4)));
        for bad in [0, 1001] {
            assert_eq!(
                parse(Some(bad), None).unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }

    #[test]
    fn redrive_ids_are_integers_however_written() {
        let req: RedriveRequest =
            serde_json::from_value(json!({"item_ids": [1, 7.0, -2]})).unwrap();
        assert_eq!(req.ids().unwrap(), vec![1, 7, -2]);
        for bad in [json!([1.5]), json!([18446744073709551615u64]), json!([])] {
            let req: RedriveRequest = serde_json::from_value(json!({ "item_ids": bad })).unwrap();
            assert_eq!(
                req.ids().unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
    }

    #[test]
    fn progress_rounds_to_a_tenth() {
        let record = JobRecord {
            id: JobId::new(),
            tenant: String::new(),
            handler: "echo".into(),
            params: json!({}),
            priority: Priority::Low,
            status: JobStatus::Processing,
            total: 3,
            succeeded: 1,
            failed: 0,
            cancelled: 0,
            created_at: 1.0,
            started_at: Some(2.0),
            completed_at: None,
            error: None,
        };
        let job = Job::from(&record);
        assert_eq!(job.progress, 33.3);
        assert_eq!(job.priority, PriorityName::Low);
        assert_eq!(job.status, JobState::Processing);
    }
}
