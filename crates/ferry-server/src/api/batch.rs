//! The KubeSentiment-compatible batch API under `/api/v1/batch/`, with its JSON field names,
//! types and status values, so its curl quick start and Python client work as written.
//!
//! Decisions: texts are items keyed by their position (`"0"`, `"1"`, …); `status` maps the
//! store's job status one to one (`pending`, `processing`, `completed`, `failed`, plus
//! `cancelled`); `processed_texts` counts texts that ended (succeeded or failed);
//! `estimated_completion_seconds` comes from measured rates (see [`super::eta`]); results are
//! paged by `page` (from 1) and `page_size` (default 100, at most 1,000); a text that failed
//! appears in the results as `{"error": ...}` in its place. `timeout_seconds` (default
//! [`AppState::default_timeout_seconds`]) is the job's deadline from submission: past it the
//! job is `failed` with an error naming it and its unfinished texts are cancelled (within
//! 250 ms: `crate::expire_jobs`, and workers drop the texts they hold); `max_batch_size`
//! caps the texts of this job in one model call (rounded down; below 1, or `0`, no cap);
//! [`AppState::max_jobs`] caps unfinished jobs over every priority (429). Every number keeps its JSON type
//! (the shapes are in [`super::shapes::batch`]): counts are integers, `progress_percentage`,
//! the timestamps (seconds since the Unix epoch), `score`, `inference_time_ms`,
//! `success_rate` and `average_confidence` are floats (`0.0`, `100.0`, `1.0` included),
//! `started_at`, `completed_at` and `error` are `null` until set. The WebSocket
//! `ws/{job_id}` is in [`super::ws`].
//!
//! `GET /api/v1/batch/metrics` answers the API's performance metrics as JSON. Job figures are
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
//! | `queue_size` | int | unfinished jobs, every priority and tenant (KubeSentiment's `async_batch_queue_size`) |
//! | `queued_texts`, `processing_texts` | int | texts waiting to be claimed / leased to workers |
//! | `queues` | object | per priority, as `queue/status`: `jobs`, `limit`, `utilization` (float), `queued_texts`, `processing_texts` |
//! | `engine` | object or `null` | this process's in-process workers since start, from the Prometheus recorder: `calls`, `retries`, `timeouts`, `items_succeeded`, `items_dead_lettered`, `items_cancelled` (all int); `null` when metrics are off |

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ferry_store::{
    JobId, JobLimits, JobRecord, JobStatus, NewItem, NewJob, Priority, RawJson, ResultRow,
};
use serde_json::value::to_raw_value;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::eta;
use super::lookup::{find, no_job};
use super::path::IdPath;
use super::problem::Problem;
use super::shapes::batch::{
    BatchEngine, BatchMetrics, BatchPaging, BatchQueues, BatchResults, BatchSummary, JobStatusBody,
    PredictRequest, PredictResponse, QueuesByPriority,
};
use super::state::AppState;
use super::tenant::Tenant;
use crate::batch_metrics;

/// Most of a tenant's jobs `metrics` reads (its newest).
const METRICS_MAX_JOBS: usize = 10_000;

/// The batch API's routes, to be merged under the API-key check.
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

/// Submits texts for sentiment analysis.
#[utoipa::path(post, path = "/api/v1/batch/predict", tag = "batch", operation_id = "batch_predict",
    request_body = PredictRequest,
    responses((status = 200, description = "The job was created", body = PredictResponse,
        links(("GetStatus" = (operation_id = "batch_status",
                              parameters(("job_id" = "$response.body#/job_id"))))))))]
pub(super) async fn predict(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Json<PredictResponse>, Problem> {
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
    let priority = req.priority.unwrap_or_default();
    if let Some(max_jobs) = state.max_jobs {
        let unfinished: u64 = state
            .store
            .queue_depths()
            .await?
            .iter()
            .map(|d| d.unfinished_jobs)
            .sum();
        if unfinished >= max_jobs {
            return Err(Problem {
                retry_after: Some(1),
                ..Problem::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "Queue Full",
                    format!("the service holds its limit of {max_jobs} unfinished jobs (max_jobs)"),
                )
            });
        }
    }
    let limits = JobLimits {
        timeout_seconds: req
            .timeout_seconds
            .or(state.default_timeout_seconds)
            .filter(|t| *t > 0.0 && t.is_finite()),
        max_batch_size: req
            .max_batch_size
            .filter(|n| *n >= 1.0)
            .map(|n| n.min(u32::MAX as f64) as u64),
    };
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
            limits,
        })
        .await?;
    batch_metrics::job_submitted(priority);
    // Texts queued or in flight at this priority and above (this job's included).
    let ahead: u64 = state
        .store
        .queue_depths()
        .await?
        .iter()
        .filter(|d| d.priority >= priority)
        .map(|d| d.queued_items + d.in_flight_items)
        .sum();
    let rate = state.rate.rate(state.store.as_ref()).await;
    let eta = eta::seconds(ahead.max(job.total), rate);
    Ok(Json(PredictResponse::from(&job).with_eta(eta)))
}

/// A batch job's status.
#[utoipa::path(get, path = "/api/v1/batch/status/{job_id}", tag = "batch",
    operation_id = "batch_status",
    params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job's status", body = JobStatusBody)))]
pub(super) async fn status(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
) -> Result<Json<JobStatusBody>, Problem> {
    let job = find(&state, &tenant, &id).await?;
    let rate = if job.status.is_finished() {
        None
    } else {
        state.rate.rate(state.store.as_ref()).await
    };
    let eta = eta::for_job(&job, rate, eta::epoch_now());
    Ok(Json(JobStatusBody::from(&job).with_eta(eta)))
}

/// Cancels a batch job.
#[utoipa::path(delete, path = "/api/v1/batch/jobs/{job_id}", tag = "batch",
    operation_id = "batch_cancel",
    params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job's status after cancelling",
               body = JobStatusBody)))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
) -> Result<Json<JobStatusBody>, Problem> {
    let job = state
        .store
        .cancel_job(tenant.as_str(), &id)
        .await?
        .ok_or_else(|| no_job(&id))?;
    Ok(Json(JobStatusBody::from(&job)))
}

/// Every result row of the job, each result as its JSON text (passed through to the page,
/// not parsed and written again).
async fn every_row(
    state: &AppState,
    tenant: &Tenant,
    id: &JobId,
) -> Result<Vec<ResultRow<RawJson>>, Problem> {
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = state
            .store
            .results_raw(tenant.as_str(), id, cursor, 1000)
            .await?
            .ok_or_else(|| no_job(id))?;
        rows.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(rows),
        }
    }
}

/// A batch job's results, paged.
#[utoipa::path(get, path = "/api/v1/batch/results/{job_id}", tag = "batch",
    operation_id = "batch_results",
    params(("job_id" = String, Path, description = "The job's id"), BatchPaging),
    responses((status = 200, description = "One page of results", body = BatchResults)))]
pub(super) async fn results(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
    paging: Result<Query<BatchPaging>, QueryRejection>,
) -> Result<Json<BatchResults>, Problem> {
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
    let summary = summary(&job, &rows);
    // Saturating: a page far past the end is simply empty.
    let start = (page - 1).saturating_mul(page_size);
    // The page's results are moved out of the rows, not copied.
    let shown: Vec<RawJson> = rows
        .into_iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(page_size as usize)
        .map(|r| match (r.result, r.error) {
            (Some(v), _) => Ok(v),
            (None, Some(e)) => to_raw_value(&json!({ "error": e })),
            (None, None) => to_raw_value(
                &json!({ "error": format!("not processed yet ({:?})", r.status).to_lowercase() }),
            ),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| Problem::internal(&e))?;
    Ok(Json(BatchResults {
        job_id: job.id.to_string(),
        results: shown,
        total_results: job.total,
        page,
        page_size,
        has_more: start.saturating_add(page_size) < job.total,
        summary,
    }))
}

/// The fields of a result the summary counts, read from its JSON text without building
/// the whole value.
#[derive(serde::Deserialize)]
struct Counted<'a> {
    #[serde(borrow)]
    label: Option<std::borrow::Cow<'a, str>>,
    score: Option<f64>,
}

/// A result's `label` (when a string) and `score` (when a number), as a parsed result's
/// `get("label")` and `get("score")` would answer them.
fn counted(raw: &RawJson) -> (Option<std::borrow::Cow<'_, str>>, Option<f64>) {
    let text = raw.get();
    if !text.trim_start().starts_with('{') {
        return (None, None);
    }
    match serde_json::from_str::<Counted<'_>>(text) {
        Ok(c) => (c.label, c.score),
        // A field of another type (a label that is not a string, a score that is not a
        // number) or given twice: read the value in full, as before.
        Err(_) => match serde_json::from_str::<Value>(text) {
            Ok(v) => (
                v.get("label")
                    .and_then(Value::as_str)
                    .map(|s| std::borrow::Cow::Owned(s.to_owned())),
                v.get("score").and_then(Value::as_f64),
            ),
            Err(_) => (None, None),
        },
    }
}

/// Counts over every result of `job`.
fn summary(job: &JobRecord, rows: &[ResultRow<RawJson>]) -> BatchSummary {
    let mut distribution: BTreeMap<String, u64> = ["POSITIVE", "NEGATIVE", "NEUTRAL"]
        .iter()
        .map(|l| ((*l).to_owned(), 0))
        .collect();
    let mut confidence = 0.0;
    let mut successes = 0u64;
    for r in rows.iter().filter_map(|r| r.result.as_ref()) {
        successes += 1;
        let (label, score) = counted(r);
        if let Some(label) = label {
            *distribution.entry(label.into_owned()).or_default() += 1;
        }
        confidence += score.unwrap_or(0.0);
    }
    BatchSummary {
        total_texts: job.total,
        successful_predictions: successes,
        failed_predictions: rows.iter().filter(|r| r.error.is_some()).count() as u64,
        success_rate: if job.total > 0 {
            successes as f64 / job.total as f64
        } else {
            0.0
        },
        sentiment_distribution: distribution,
        average_confidence: if successes > 0 {
            confidence / successes as f64
        } else {
            0.0
        },
    }
}

/// The queues by priority.
#[utoipa::path(get, path = "/api/v1/batch/queue/status", tag = "batch",
    operation_id = "batch_queue_status",
    responses((status = 200, description = "Queue depths", body = BatchQueues)))]
pub(super) async fn queue_status(
    State(state): State<AppState>,
) -> Result<Json<BatchQueues>, Problem> {
    let depths = state.store.queue_depths().await?;
    Ok(Json(BatchQueues {
        queues: QueuesByPriority::from(&depths[..]),
        total_jobs: depths.iter().map(|d| d.unfinished_jobs).sum(),
    }))
}

/// Performance metrics (see the module docs).
#[utoipa::path(get, path = "/api/v1/batch/metrics", tag = "batch", operation_id = "batch_metrics",
    responses((status = 200, description = "Job, queue and engine figures", body = BatchMetrics)))]
pub(super) async fn metrics(
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<BatchMetrics>, Problem> {
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
    let engine = state.metrics.as_ref().map(|h| engine_totals(&h.render()));
    let figures = JobFigures::of(&jobs);
    Ok(Json(BatchMetrics {
        total_jobs: jobs.len() as u64,
        active_jobs: figures.by_status["pending"] + figures.by_status["processing"],
        total_texts: figures.texts,
        processed_texts: figures.succeeded + figures.failed,
        successful_texts: figures.succeeded,
        failed_texts: figures.failed,
        success_rate: figures.success_rate(),
        average_processing_time_seconds: mean(&figures.processing),
        average_queue_wait_seconds: mean(&figures.waits),
        average_end_to_end_seconds: mean(&figures.end_to_end),
        throughput_tps: figures.throughput(),
        jobs_by_status: figures.by_status,
        jobs_by_priority: figures.by_priority,
        truncated,
        queue_size: depths.iter().map(|d| d.unfinished_jobs).sum(),
        queued_texts: depths.iter().map(|d| d.queued_items).sum(),
        processing_texts: depths.iter().map(|d| d.in_flight_items).sum(),
        queues: QueuesByPriority::from(&depths[..]),
        engine,
    }))
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

/// The job figures of `metrics` (see the module docs), gathered over the tenant's jobs.
#[derive(Debug, Default)]
struct JobFigures {
    by_status: BTreeMap<String, u64>,
    by_priority: BTreeMap<String, u64>,
    texts: u64,
    succeeded: u64,
    failed: u64,
    /// `completed_at - started_at` of completed and failed jobs.
    processing: Vec<f64>,
    /// `started_at - created_at` of started jobs.
    waits: Vec<f64>,
    /// `completed_at - created_at` of completed and failed jobs.
    end_to_end: Vec<f64>,
    /// Busy time: the union of completed and failed jobs' `started_at..completed_at`.
    busy: f64,
    /// Texts that ended in those jobs.
    busy_texts: u64,
}

impl JobFigures {
    fn of(jobs: &[JobRecord]) -> Self {
        let mut f = JobFigures {
            by_status: [
                JobStatus::Pending,
                JobStatus::Processing,
                JobStatus::Completed,
                JobStatus::Failed,
                JobStatus::Cancelled,
            ]
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect(),
            by_priority: Priority::DESCENDING
                .iter()
                .map(|p| (p.as_str().to_owned(), 0))
                .collect(),
            ..JobFigures::default()
        };
        let mut spans = Vec::new();
        for job in jobs {
            *f.by_status
                .entry(job.status.as_str().to_owned())
                .or_default() += 1;
            *f.by_priority
                .entry(job.priority.as_str().to_owned())
                .or_default() += 1;
            f.texts += job.total;
            f.succeeded += job.succeeded;
            f.failed += job.failed;
            if let Some(started) = job.started_at {
                f.waits.push((started - job.created_at).max(0.0));
            }
            let ended = matches!(job.status, JobStatus::Completed | JobStatus::Failed);
            if let (true, Some(completed)) = (ended, job.completed_at) {
                f.end_to_end.push((completed - job.created_at).max(0.0));
                if let Some(started) = job.started_at {
                    f.processing.push((completed - started).max(0.0));
                    spans.push((started, completed.max(started)));
                    f.busy_texts += job.succeeded + job.failed;
                }
            }
        }
        f.busy = busy_seconds(spans);
        f
    }

    /// Succeeded over ended texts, `1.0` when none ended.
    fn success_rate(&self) -> f64 {
        let processed = self.succeeded + self.failed;
        if processed > 0 {
            self.succeeded as f64 / processed as f64
        } else {
            1.0
        }
    }

    /// Texts ended per busy second, `0.0` without busy time.
    fn throughput(&self) -> f64 {
        if self.busy > 0.0 {
            self.busy_texts as f64 / self.busy
        } else {
            0.0
        }
    }
}

/// Sums the engines' counters in Prometheus text (every `engine` label together).
fn engine_totals(text: &str) -> BatchEngine {
    let mut totals = BatchEngine::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.trim().rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let outcome = |o: &str| labels.contains(&format!("outcome=\"{o}\""));
        let total = match name {
            "ferry_calls_total" => &mut totals.calls,
            "ferry_retries_total" => &mut totals.retries,
            "ferry_timeouts_total" => &mut totals.timeouts,
            "ferry_items_total" if outcome("succeeded") => &mut totals.items_succeeded,
            "ferry_items_total" if outcome("dead_lettered") => &mut totals.items_dead_lettered,
            "ferry_items_total" if outcome("cancelled") => &mut totals.items_cancelled,
            _ => continue,
        };
        *total += value.max(0.0) as u64;
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary's fields read from a result's text as from the parsed value.
    #[test]
    fn counted_reads_label_and_score_as_the_parsed_value_would() {
        let raw = |text: &str| serde_json::value::RawValue::from_string(text.into()).unwrap();
        for text in [
            r#"{"label":"POSITIVE","score":0.5,"cached":true}"#,
            r#"{"score":2,"label":"NEG\u0041TIVE"}"#,
            r#"{"label":7,"score":"high"}"#,
            r#"{"label":"A","label":"B","score":null}"#,
            r#"{"other":{"label":"X"}}"#,
            r#"["POSITIVE",0.5]"#,
            r#""POSITIVE""#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let want = (
                v.get("label").and_then(Value::as_str),
                v.get("score").and_then(Value::as_f64),
            );
            let r = raw(text);
            let (label, score) = counted(&r);
            assert_eq!((label.as_deref(), score), want, "{text}");
        }
    }

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
            limits: ferry_store::JobLimits::default(),
        }
    }

    #[test]
    fn busy_time_is_the_union_of_spans() {
        assert_eq!(busy_seconds(vec![]), 0.0);
        assert_eq!(busy_seconds(vec![(5.0, 6.0), (0.0, 2.0), (1.0, 3.0)]), 4.0);
        assert_eq!(busy_seconds(vec![(0.0, 10.0), (2.0, 3.0)]), 10.0);
    }

    #[test]
    fn job_figures_count_by_status_and_priority_and_time_finished_jobs() {
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
        let f = JobFigures::of(&jobs);
        assert_eq!(
            json!(f.by_status),
            json!({"cancelled": 0, "completed": 1, "failed": 1, "pending": 1, "processing": 1})
        );
        assert_eq!(
            json!(f.by_priority),
            json!({"high": 1, "low": 1, "medium": 2})
        );
        assert_eq!(f.texts, 34);
        assert_eq!(f.succeeded + f.failed, 9 + 1 + 4 + 5);
        assert_eq!(f.succeeded, 14);
        assert_eq!(f.failed, 5);
        assert_eq!(f.success_rate(), 14.0 / 19.0);
        // Completed 1..3 and failed 2..4: 2 s each, busy 1..4 = 3 s for 14 texts.
        assert_eq!(mean(&f.processing), 2.0);
        assert_eq!(mean(&f.end_to_end), 2.5);
        assert_eq!(mean(&f.waits), 2.0 / 3.0);
        assert_eq!(f.throughput(), 14.0 / 3.0);

        let empty = JobFigures::of(&[]);
        assert_eq!(empty.success_rate(), 1.0);
        assert_eq!(empty.throughput(), 0.0);
        assert_eq!(mean(&empty.processing), 0.0);
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
            serde_json::to_value(engine_totals(text)).unwrap(),
            json!({"calls": 4, "items_cancelled": 0, "items_dead_lettered": 2,
                   "items_succeeded": 10, "retries": 0, "timeouts": 0})
        );
        // The JSON order is the one the counters had before they were typed: alphabetical.
        let text = serde_json::to_string(&engine_totals("")).unwrap();
        assert_eq!(
            text,
            "{\"calls\":0,\"items_cancelled\":0,\"items_dead_lettered\":0,\
             \"items_succeeded\":0,\"retries\":0,\"timeouts\":0}"
        );
    }
}
