//! Seed 001's routes under `/api/v1/batch/`, with its JSON field names, types and status
//! values, so its curl quick start and Python client work as written.
//!
//! Decisions: texts are items keyed by their position (`"0"`, `"1"`, …); `status` maps the
//! store's job status one to one (`pending`, `processing`, `completed`, `failed`, plus
//! `cancelled`); `processed_texts` counts texts that ended (succeeded or failed);
//! `estimated_completion_seconds` assumes 5,000 texts/s, at least 1; results are paged by
//! `page` (from 1) and `page_size` (default 100, at most 1,000); a text that failed appears
//! in the results as `{"error": ...}` in its place; `timeout_seconds` and `max_batch_size`
//! are accepted and ignored (Ferry sizes batches itself).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferry_store::{JobId, JobRecord, JobStatus, NewItem, NewJob, Priority, ResultRow};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AppState, JsonBody, Problem, Tenant};

/// Texts per second assumed for `estimated_completion_seconds`.
const ESTIMATED_RATE: f64 = 5000.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PredictRequest {
    texts: Vec<String>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    #[allow(dead_code)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    max_batch_size: Option<u64>,
}

/// Seed 001's routes, to be merged under the API-key check.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/batch/predict", post(predict))
        .route("/api/v1/batch/status/{id}", get(status))
        .route("/api/v1/batch/results/{id}", get(results))
        .route("/api/v1/batch/jobs/{id}", delete(cancel))
        .route("/api/v1/batch/queue/status", get(queue_status))
}

fn estimate(total: u64) -> u64 {
    ((total as f64 / ESTIMATED_RATE).ceil() as u64).max(1)
}

fn progress(job: &JobRecord) -> f64 {
    if job.total == 0 {
        return 100.0;
    }
    let ended = job.succeeded + job.failed + job.cancelled;
    (ended as f64 * 100.0 / job.total as f64 * 10.0).round() / 10.0
}

fn parse_id(id: &str) -> JobId {
    JobId::from(id)
}

pub(super) async fn predict(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Json<Value>, Problem> {
    if req.texts.is_empty() {
        return Err(Problem::invalid(
            "`texts` is empty: send between 1 and the limit of texts",
        ));
    }
    if req.texts.len() > state.max_texts {
        return Err(Problem::invalid(format!(
            "`texts` holds {} texts; the limit is {}",
            req.texts.len(),
            state.max_texts
        )));
    }
    if let Some((i, t)) = req
        .texts
        .iter()
        .enumerate()
        .find(|(_, t)| t.chars().count() > state.max_text_chars)
    {
        return Err(Problem::invalid(format!(
            "`texts[{i}]` is {} characters long; the limit is {}",
            t.chars().count(),
            state.max_text_chars
        )));
    }
    let priority = req.priority.unwrap_or(Priority::Medium);
    let job = state
        .store
        .create_job(NewJob {
            tenant: tenant.0,
            handler: state.predict_handler.clone(),
            params: Value::Null,
            priority,
            items: req
                .texts
                .into_iter()
                .enumerate()
                .map(|(i, text)| NewItem {
                    key: i.to_string(),
                    payload: Value::String(text),
                })
                .collect(),
            idempotency_key: None,
        })
        .await?;
    Ok(Json(json!({
        "job_id": job.id.as_str(),
        "status": job.status.as_str(),
        "total_texts": job.total,
        "estimated_completion_seconds": estimate(job.total),
        "created_at": job.created_at,
        "priority": job.priority.as_str(),
        "progress_percentage": progress(&job),
    })))
}

async fn find(state: &AppState, tenant: &Tenant, id: &str) -> Result<JobRecord, Problem> {
    state
        .store
        .job(tenant.as_str(), &parse_id(id))
        .await?
        .ok_or_else(|| Problem::not_found(format!("no job `{id}`")))
}

fn status_body(job: &JobRecord) -> Value {
    json!({
        "job_id": job.id.as_str(),
        "status": job.status.as_str(),
        "total_texts": job.total,
        "processed_texts": job.succeeded + job.failed,
        "failed_texts": job.failed,
        "progress_percentage": progress(job),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "estimated_completion_seconds": estimate(job.total),
        "priority": job.priority.as_str(),
        "error": job.error,
    })
}

pub(super) async fn status(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(status_body(&find(&state, &tenant, &id).await?)))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let job = state
        .store
        .cancel_job(tenant.as_str(), &parse_id(&id))
        .await?
        .ok_or_else(|| Problem::not_found(format!("no job `{id}`")))?;
    Ok(Json(status_body(&job)))
}

#[derive(Debug, Deserialize)]
pub(super) struct Paging {
    page: Option<u64>,
    page_size: Option<u64>,
}

async fn every_row(
    state: &AppState,
    tenant: &Tenant,
    id: &JobId,
) -> Result<Vec<ResultRow>, Problem> {
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = state
            .store
            .results(tenant.as_str(), id, cursor, 1000)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no job `{id}`")))?;
        rows.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(rows),
        }
    }
}

pub(super) async fn results(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(paging) = paging.map_err(|e| Problem::bad_request(e.body_text()))?;
    let page = paging.page.unwrap_or(1);
    let page_size = paging.page_size.unwrap_or(100);
    if page == 0 {
        return Err(Problem::invalid("`page` starts at 1"));
    }
    if !(1..=1000).contains(&page_size) {
        return Err(Problem::invalid("`page_size` must lie between 1 and 1000"));
    }
    let job = find(&state, &tenant, &id).await?;
    let rows = every_row(&state, &tenant, &job.id).await?;
    let start = ((page - 1) * page_size) as usize;
    let shown: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(page_size as usize)
        .map(|r| match (&r.result, &r.error) {
            (Some(v), _) => v.clone(),
            (None, Some(e)) => json!({ "error": e }),
            (None, None) => {
                json!({ "error": format!("not processed yet ({:?})", r.status).to_lowercase() })
            }
        })
        .collect();
    let mut distribution: BTreeMap<String, u64> = ["POSITIVE", "NEGATIVE", "NEUTRAL"]
        .iter()
        .map(|l| ((*l).to_owned(), 0))
        .collect();
    let mut confidence = 0.0;
    let mut successes = 0u64;
    for r in rows.iter().filter_map(|r| r.result.as_ref()) {
        successes += 1;
        if let Some(label) = r.get("label").and_then(Value::as_str) {
            *distribution.entry(label.to_owned()).or_default() += 1;
        }
        confidence += r.get("score").and_then(Value::as_f64).unwrap_or(0.0);
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count() as u64;
    Ok(Json(json!({
        "job_id": job.id.as_str(),
        "results": shown,
        "total_results": job.total,
        "page": page,
        "page_size": page_size,
        "has_more": (start as u64 + page_size) < job.total,
        "summary": {
            "total_texts": job.total,
            "successful_predictions": successes,
            "failed_predictions": failed,
            "success_rate": if job.total > 0 { successes as f64 / job.total as f64 } else { 0.0 },
            "sentiment_distribution": distribution,
            "average_confidence": if successes > 0 { confidence / successes as f64 } else { 0.0 },
        },
    })))
}

pub(super) async fn queue_status(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let depths = state.store.queue_depths().await?;
    let mut queues = serde_json::Map::new();
    let mut total_jobs = 0;
    for d in &depths {
        total_jobs += d.unfinished_jobs;
        queues.insert(
            d.priority.as_str().to_owned(),
            json!({
                "jobs": d.unfinished_jobs,
                "limit": d.limit,
                "utilization": if d.limit > 0 { d.unfinished_jobs as f64 / d.limit as f64 } else { 0.0 },
                "queued_texts": d.queued_items,
                "processing_texts": d.in_flight_items,
            }),
        );
    }
    let _ = JobStatus::Pending;
    Ok(Json(json!({ "queues": queues, "total_jobs": total_jobs })))
}
