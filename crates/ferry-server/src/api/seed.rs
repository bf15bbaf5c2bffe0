//! Seed 001's routes under `/api/v1/batch/`, with its JSON field names, types and status
//! values, so its curl quick start and Python client work as written.
//!
//! Decisions: texts are items keyed by their position (`"0"`, `"1"`, …); `status` maps the
//! store's job status one to one (`pending`, `processing`, `completed`, `failed`, plus
//! `cancelled`); `processed_texts` counts texts that ended (succeeded or failed);
//! `estimated_completion_seconds` assumes 5,000 texts/s, at least 1; results are paged by
//! `page` (from 1) and `page_size` (default 100, at most 1,000); a text that failed appears
//! in the results as `{"error": ...}` in its place; `timeout_seconds` and `max_batch_size`
//! are accepted and ignored (Ferry sizes batches itself). Every number keeps the seed's JSON
//! type: counts are integers, `progress_percentage`, the timestamps (seconds since the Unix
//! epoch), `score`, `inference_time_ms`, `success_rate` and `average_confidence` are floats
//! (`0.0`, `100.0`, `1.0` included), `started_at`, `completed_at` and `error` are `null` until
//! set. The WebSocket `ws/{job_id}` is in [`super::ws`].
//!
//! `GET /api/v1/batch/metrics` answers the seed's performance metrics as JSON. Job figures are
//! the caller's tenant's, over its newest 10,000 jobs still in the store (finished jobs leave
//! after the result TTL); queue and engine figures are the whole service's:
//!
//! | Field | Type | Meaning |
//! |-------|------|---------|
//! | `total_jobs` | int | jobs counted |
//! | `truncated` | bool | whether the tenant has more jobs than were counted |
//! | `active_jobs` | int | pending + processing |
//! | `jobs_by_status` | object of int | `pending`, `processing`, `completed`, `failed`, `cancelled` |
//! | `jobs_by_priority` | object of int | `high`, `medium`, `low` |
//! | `total_texts` | int | texts in the jobs counted |
//! | `processed_texts` | int | texts that ended, succeeded or failed |
//! | `successful_texts`, `failed_texts` | int | of those, with a result / dead-lettered |
//! | `success_rate` | float | `successful_texts / processed_texts` (`1.0` when none ended) |
//! | `average_processing_time_seconds` | float | mean `completed_at - started_at` of completed and failed jobs (`0.0` when none) |
//! | `average_queue_wait_seconds` | float | mean `started_at - created_at` of started jobs |
//! | `average_end_to_end_seconds` | float | mean `completed_at - created_at` of completed and failed jobs |
//! | `throughput_tps` | float | texts ended in completed and failed jobs per second of busy time (the union of their `started_at..completed_at` spans) |
//! | `queue_size` | int | unfinished jobs, every priority and tenant (the seed's `async_batch_queue_size`) |
//! | `queued_texts`, `processing_texts` | int | texts waiting to be claimed / leased to workers |
//! | `queues` | object | per priority, as `queue/status`: `jobs`, `limit`, `utilization` (float), `queued_texts`, `processing_texts` |
//! | `engine` | object or `null` | this process's in-process workers since start, from the Prometheus recorder: `calls`, `retries`, `timeouts`, `items_succeeded`, `items_dead_lettered`, `items_cancelled` (all int); `null` when metrics are off |

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferry_store::{JobId, JobRecord, JobStatus, NewItem, NewJob, Priority, QueueDepth, ResultRow};
use serde::Deserialize;
use serde_json::{json, Value};

use super::path::IdPath;
use super::v1::{find, no_job};
use super::{AppState, JsonBody, Problem, Tenant};

/// Texts per second assumed for `estimated_completion_seconds`.
const ESTIMATED_RATE: f64 = 5000.0;

/// Most of a tenant's jobs `metrics` reads (its newest).
const METRICS_MAX_JOBS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PredictRequest {
    texts: Vec<String>,
    #[serde(default)]
    priority: Option<Priority>,
    /// Accepted as any non-negative number (JSON Schema's integers include `3.0`); ignored.
    #[serde(default)]
    timeout_seconds: Option<f64>,
    /// Accepted as any non-negative number; ignored (Ferry sizes batches itself).
    #[serde(default)]
    max_batch_size: Option<f64>,
}

/// Seed 001's routes, to be merged under the API-key check.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/batch/predict", post(predict))
        .route("/api/v1/batch/status/{id}", get(status))
        .route("/api/v1/batch/results/{id}", get(results))
        .route("/api/v1/batch/jobs/{id}", delete(cancel))
        .route("/api/v1/batch/queue/status", get(queue_status))
        .route("/api/v1/batch/metrics", get(metrics))
        .route("/api/v1/batch/ws/{id}", get(super::ws::status_feed))
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

pub(super) async fn predict(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Json<Value>, Problem> {
    for (name, value) in [
        ("timeout_seconds", req.timeout_seconds),
        ("max_batch_size", req.max_batch_size),
    ] {
        if value.is_some_and(|v| v < 0.0) {
            return Err(Problem::invalid(format!(
                "`{name}` must be a non-negative number"
            )));
        }
    }
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

pub(super) fn status_body(job: &JobRecord) -> Value {
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
    IdPath(id): IdPath,
) -> Result<Json<Value>, Problem> {
    Ok(Json(status_body(&find(&state, &tenant, &id).await?)))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
) -> Result<Json<Value>, Problem> {
    let job = state
        .store
        .cancel_job(tenant.as_str(), &id)
        .await?
        .ok_or_else(|| no_job(&id))?;
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
    IdPath(id): IdPath,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(paging) = paging.map_err(|e| Problem::bad_request(e.body_text()))?;
    let page = paging.page.unwrap_or(1);
    let page_size = paging.page_size.unwrap_or(100);
    if page == 0 {
        return Err(Problem::invalid("`page` starts at 1"));
    }
    if page > i64::MAX as u64 {
        return Err(Problem::invalid(format!("`page` is at most {}", i64::MAX)));
    }
    if !(1..=1000).contains(&page_size) {
        return Err(Problem::invalid("`page_size` must lie between 1 and 1000"));
    }
    let job = find(&state, &tenant, &id).await?;
    let rows = every_row(&state, &tenant, &job.id).await?;
    // Saturating: a page far past the end is simply empty.
    let start = (page - 1).saturating_mul(page_size);
    let shown: Vec<Value> = rows
        .iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
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
        "has_more": start.saturating_add(page_size) < job.total,
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

/// One priority's queue as `queue/status` and `metrics` show it.
fn queue_json(d: &QueueDepth) -> Value {
    json!({
        "jobs": d.unfinished_jobs,
        "limit": d.limit,
        "utilization": if d.limit > 0 { d.unfinished_jobs as f64 / d.limit as f64 } else { 0.0 },
        "queued_texts": d.queued_items,
        "processing_texts": d.in_flight_items,
    })
}

pub(super) async fn queue_status(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let depths = state.store.queue_depths().await?;
    let queues: serde_json::Map<String, Value> = depths
        .iter()
        .map(|d| (d.priority.as_str().to_owned(), queue_json(d)))
        .collect();
    let total_jobs: u64 = depths.iter().map(|d| d.unfinished_jobs).sum();
    Ok(Json(json!({ "queues": queues, "total_jobs": total_jobs })))
}

pub(super) async fn metrics(
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Value>, Problem> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    let mut truncated = false;
    loop {
        let page = state.store.list_jobs(tenant.as_str(), 1000, cursor).await?;
        jobs.extend(page.items);
        match page.next_cursor {
            Some(_) if jobs.len() >= METRICS_MAX_JOBS => {
                truncated = true;
                break;
            }
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if jobs.len() > METRICS_MAX_JOBS {
        jobs.truncate(METRICS_MAX_JOBS);
        truncated = true;
    }
    let depths = state.store.queue_depths().await?;
    let mut body = job_metrics(&jobs);
    body.insert("truncated".into(), truncated.into());
    body.insert(
        "queue_size".into(),
        depths.iter().map(|d| d.unfinished_jobs).sum::<u64>().into(),
    );
    body.insert(
        "queued_texts".into(),
        depths.iter().map(|d| d.queued_items).sum::<u64>().into(),
    );
    body.insert(
        "processing_texts".into(),
        depths.iter().map(|d| d.in_flight_items).sum::<u64>().into(),
    );
    body.insert(
        "queues".into(),
        depths
            .iter()
            .map(|d| (d.priority.as_str().to_owned(), queue_json(d)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    body.insert(
        "engine".into(),
        state
            .metrics
            .as_ref()
            .map_or(Value::Null, |h| engine_totals(&h.render())),
    );
    Ok(Json(Value::Object(body)))
}

/// Mean of `values`, `0.0` for none.
fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Total length of the union of `spans` (`(start, end)`, any order).
fn busy_seconds(mut spans: Vec<(f64, f64)>) -> f64 {
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0.0, |(s, e)| e - s)
}

/// The job figures of `metrics` (see the module docs) over `jobs`.
fn job_metrics(jobs: &[JobRecord]) -> serde_json::Map<String, Value> {
    let mut by_status: BTreeMap<&str, u64> = [
        JobStatus::Pending,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ]
    .iter()
    .map(|s| (s.as_str(), 0))
    .collect();
    let mut by_priority: BTreeMap<&str, u64> =
        Priority::ALL.iter().map(|p| (p.as_str(), 0)).collect();
    let (mut texts, mut succeeded, mut failed) = (0u64, 0u64, 0u64);
    let (mut processing, mut waits, mut end_to_end) = (Vec::new(), Vec::new(), Vec::new());
    let (mut spans, mut span_texts) = (Vec::new(), 0u64);
    for job in jobs {
        *by_status.entry(job.status.as_str()).or_default() += 1;
        *by_priority.entry(job.priority.as_str()).or_default() += 1;
        texts += job.total;
        succeeded += job.succeeded;
        failed += job.failed;
        if let Some(started) = job.started_at {
            waits.push((started - job.created_at).max(0.0));
        }
        let ended = matches!(job.status, JobStatus::Completed | JobStatus::Failed);
        if let (true, Some(completed)) = (ended, job.completed_at) {
            end_to_end.push((completed - job.created_at).max(0.0));
            if let Some(started) = job.started_at {
                processing.push((completed - started).max(0.0));
                spans.push((started, completed.max(started)));
                span_texts += job.succeeded + job.failed;
            }
        }
    }
    let busy = busy_seconds(spans);
    let processed = succeeded + failed;
    let active = by_status["pending"] + by_status["processing"];
    let mut body = serde_json::Map::new();
    body.insert("total_jobs".into(), (jobs.len() as u64).into());
    body.insert("active_jobs".into(), active.into());
    body.insert("jobs_by_status".into(), json!(by_status));
    body.insert("jobs_by_priority".into(), json!(by_priority));
    body.insert("total_texts".into(), texts.into());
    body.insert("processed_texts".into(), processed.into());
    body.insert("successful_texts".into(), succeeded.into());
    body.insert("failed_texts".into(), failed.into());
    body.insert(
        "success_rate".into(),
        (if processed > 0 {
            succeeded as f64 / processed as f64
        } else {
            1.0
        })
        .into(),
    );
    body.insert(
        "average_processing_time_seconds".into(),
        mean(&processing).into(),
    );
    body.insert("average_queue_wait_seconds".into(), mean(&waits).into());
    body.insert(
        "average_end_to_end_seconds".into(),
        mean(&end_to_end).into(),
    );
    body.insert(
        "throughput_tps".into(),
        (if busy > 0.0 {
            span_texts as f64 / busy
        } else {
            0.0
        })
        .into(),
    );
    body
}

/// Sums the engines' counters in Prometheus text (every `engine` label together).
fn engine_totals(text: &str) -> Value {
    let mut totals: BTreeMap<&str, u64> = [
        "calls",
        "retries",
        "timeouts",
        "items_succeeded",
        "items_dead_lettered",
        "items_cancelled",
    ]
    .iter()
    .map(|k| (*k, 0))
    .collect();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.trim().rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let outcome = |o: &str| labels.contains(&format!("outcome=\"{o}\""));
        let key = match name {
            "ferry_calls_total" => "calls",
            "ferry_retries_total" => "retries",
            "ferry_timeouts_total" => "timeouts",
            "ferry_items_total" if outcome("succeeded") => "items_succeeded",
            "ferry_items_total" if outcome("dead_lettered") => "items_dead_lettered",
            "ferry_items_total" if outcome("cancelled") => "items_cancelled",
            _ => continue,
        };
        if let Some(total) = totals.get_mut(key) {
            *total += value.max(0.0) as u64;
        }
    }
    json!(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        status: JobStatus,
        priority: Priority,
        times: (f64, Option<f64>, Option<f64>),
    ) -> JobRecord {
        let (total, succeeded, failed) = match status {
            JobStatus::Completed => (10, 9, 1),
            JobStatus::Failed => (4, 0, 4),
            JobStatus::Processing => (10, 5, 0),
            _ => (10, 0, 0),
        };
        JobRecord {
            id: JobId::new(),
            tenant: String::new(),
            handler: "sentiment".into(),
            params: Value::Null,
            priority,
            status,
            total,
            succeeded,
            failed,
            cancelled: 0,
            created_at: times.0,
            started_at: times.1,
            completed_at: times.2,
            error: None,
        }
    }

    #[test]
    fn status_numbers_keep_the_seeds_json_types() {
        // An integral timestamp and a fresh job still serialise as floats (`100.0`, `0.0`).
        let fresh = job(
            JobStatus::Pending,
            Priority::Medium,
            (1_700_000_000.0, None, None),
        );
        let body = status_body(&fresh);
        assert!(body["created_at"].is_f64(), "{body}");
        assert!(body["progress_percentage"].is_f64(), "{body}");
        assert_eq!(body["progress_percentage"], 0.0);
        assert!(body["started_at"].is_null() && body["error"].is_null());
        assert!(body["total_texts"].is_u64() && body["processed_texts"].is_u64());
        assert!(body["estimated_completion_seconds"].is_u64());
        let text = body.to_string();
        assert!(text.contains("\"created_at\":1700000000.0"), "{text}");
        assert!(text.contains("\"progress_percentage\":0.0"), "{text}");
        let done = job(
            JobStatus::Completed,
            Priority::High,
            (1.0, Some(2.0), Some(3.0)),
        );
        assert!(status_body(&done)
            .to_string()
            .contains("\"progress_percentage\":100.0"));
    }

    #[test]
    fn busy_time_is_the_union_of_spans() {
        assert_eq!(busy_seconds(vec![]), 0.0);
        assert_eq!(busy_seconds(vec![(5.0, 6.0), (0.0, 2.0), (1.0, 3.0)]), 4.0);
        assert_eq!(busy_seconds(vec![(0.0, 10.0), (2.0, 3.0)]), 10.0);
    }

    #[test]
    fn job_metrics_count_by_status_and_priority_and_time_finished_jobs() {
        let jobs = [
            job(
                JobStatus::Completed,
                Priority::High,
                (0.0, Some(1.0), Some(3.0)),
            ),
            job(
                JobStatus::Failed,
                Priority::Medium,
                (2.0, Some(2.0), Some(4.0)),
            ),
            job(
                JobStatus::Processing,
                Priority::Medium,
                (5.0, Some(6.0), None),
            ),
            job(JobStatus::Pending, Priority::Low, (7.0, None, None)),
        ];
        let m = Value::Object(job_metrics(&jobs));
        assert_eq!(m["total_jobs"], 4);
        assert_eq!(m["active_jobs"], 2);
        assert_eq!(
            m["jobs_by_status"],
            json!({"pending": 1, "processing": 1, "completed": 1, "failed": 1, "cancelled": 0})
        );
        assert_eq!(
            m["jobs_by_priority"],
            json!({"high": 1, "medium": 2, "low": 1})
        );
        assert_eq!(m["total_texts"], 34);
        assert_eq!(m["processed_texts"], 9 + 1 + 4 + 5);
        assert_eq!(m["successful_texts"], 14);
        assert_eq!(m["failed_texts"], 5);
        assert_eq!(m["success_rate"], 14.0 / 19.0);
        // Completed 1..3 and failed 2..4: 2 s each, busy 1..4 = 3 s for 14 texts.
        assert_eq!(m["average_processing_time_seconds"], 2.0);
        assert_eq!(m["average_end_to_end_seconds"], 2.5);
        assert_eq!(m["average_queue_wait_seconds"], 2.0 / 3.0);
        assert_eq!(m["throughput_tps"], 14.0 / 3.0);

        let empty = Value::Object(job_metrics(&[]));
        assert_eq!(empty["total_jobs"], 0);
        for float in [
            "success_rate",
            "throughput_tps",
            "average_processing_time_seconds",
        ] {
            assert!(empty[float].is_f64(), "{float}: {empty}");
        }
        assert_eq!(empty["success_rate"], 1.0);
    }

    #[test]
    fn engine_totals_sum_every_engine() {
        let text = "# TYPE ferry_items_total counter\n\
            ferry_items_total{engine=\"sentiment\",outcome=\"succeeded\"} 7\n\
            ferry_items_total{engine=\"echo\",outcome=\"succeeded\"} 3\n\
            ferry_items_total{engine=\"echo\",outcome=\"dead_lettered\"} 2\n\
            ferry_calls_total{engine=\"sentiment\"} 4\n\
            ferry_batch_latency_seconds_sum{engine=\"sentiment\"} 0.5\n";
        assert_eq!(
            engine_totals(text),
            json!({"calls": 4, "retries": 0, "timeouts": 0, "items_succeeded": 10,
                   "items_dead_lettered": 2, "items_cancelled": 0})
        );
    }
}
