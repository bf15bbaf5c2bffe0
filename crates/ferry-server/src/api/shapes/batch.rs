//! The KubeSentiment-compatible batch API's request and answers (`/api/v1/batch/...`), with
//! its field names, order and JSON types: counts are integers; `progress_percentage`, the
//! timestamps, `utilization`, `success_rate` and the averages are floats (`0.0` and `100.0`
//! included); `started_at`, `completed_at` and `error` are `null` until set. One set of
//! types, serialized by the handlers and described by `/openapi.json`.

use std::collections::BTreeMap;

use ferry_store::{JobRecord, Priority, QueueDepth, RawJson};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::super::eta;
use super::job::{api_priority, progress, JobState, PrioritySchema};

/// `job`'s estimate from its own rate alone ([`eta::for_job`] without the service's rate);
/// the routes that know the service's rate replace it (`with_eta`).
fn estimate(job: &JobRecord) -> u64 {
    eta::for_job(job, None, eta::epoch_now())
}

/// `POST /api/v1/batch/predict`: texts to classify. Unknown fields are 422.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PredictRequest {
    /// 1 to 1,000 texts (the service's `max_texts`), each at most 10,000 characters.
    #[schema(min_items = 1)]
    pub(crate) texts: Vec<String>,
    /// Queue priority (default `medium`).
    #[serde(default, deserialize_with = "api_priority")]
    #[schema(value_type = Option<PrioritySchema>)]
    pub(crate) priority: Option<Priority>,
    /// Seconds from submission within which the job must finish; past it the job fails
    /// and its unfinished texts are cancelled (default: the service's
    /// `default_timeout_seconds`, none unless set). Any positive number; `0` means none.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub(crate) timeout_seconds: Option<f64>,
    /// Most of this job's texts in one model call (Ferry sizes batches itself under this
    /// cap). A positive whole number (`7.0` is 7); `0` means no cap.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub(crate) max_batch_size: Option<f64>,
}

/// The job `predict` created.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PredictResponse {
    /// The job's id.
    job_id: String,
    /// Where it stands (`pending` at first).
    status: JobState,
    /// Texts in the job.
    total_texts: u64,
    /// Seconds until it is expected to finish: the texts queued ahead of it and its own
    /// over the service's measured rate, at least 1.
    estimated_completion_seconds: u64,
    /// When it was created (seconds since the Unix epoch).
    created_at: f64,
    /// Queue priority.
    #[schema(value_type = PrioritySchema)]
    priority: Priority,
    /// Percentage of texts that ended.
    progress_percentage: f64,
}

impl PredictResponse {
    /// With `seconds` as `estimated_completion_seconds`.
    pub(crate) fn with_eta(mut self, seconds: u64) -> Self {
        self.estimated_completion_seconds = seconds;
        self
    }
}

impl From<&JobRecord> for PredictResponse {
    fn from(job: &JobRecord) -> Self {
        PredictResponse {
            job_id: job.id.to_string(),
            status: job.status.into(),
            total_texts: job.total,
            estimated_completion_seconds: estimate(job),
            created_at: job.created_at,
            priority: job.priority,
            progress_percentage: progress(job),
        }
    }
}

/// A batch job's status (`status/{job_id}`, `jobs/{job_id}` DELETE, each WebSocket message).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchJobStatus)]
pub(crate) struct JobStatusBody {
    /// The job's id.
    job_id: String,
    /// Where it stands.
    status: JobState,
    /// Texts in the job.
    total_texts: u64,
    /// Texts that ended, succeeded or failed.
    processed_texts: u64,
    /// Texts that failed.
    failed_texts: u64,
    /// Percentage of texts that ended (cancelled ones included).
    progress_percentage: f64,
    /// When it was created (seconds since the Unix epoch).
    created_at: f64,
    /// When its first text was claimed.
    started_at: Option<f64>,
    /// When its last text ended, or when it was cancelled.
    completed_at: Option<f64>,
    /// Seconds until it is expected to finish (its remaining texts over its own measured
    /// rate, else the service's), or, once finished, how long it took; at least 1.
    estimated_completion_seconds: u64,
    /// Queue priority.
    #[schema(value_type = PrioritySchema)]
    priority: Priority,
    /// Why it failed, for a failed job.
    error: Option<String>,
}

impl JobStatusBody {
    /// With `seconds` as `estimated_completion_seconds`.
    pub(crate) fn with_eta(mut self, seconds: u64) -> Self {
        self.estimated_completion_seconds = seconds;
        self
    }
}

impl From<&JobRecord> for JobStatusBody {
    fn from(job: &JobRecord) -> Self {
        JobStatusBody {
            job_id: job.id.to_string(),
            status: job.status.into(),
            total_texts: job.total,
            processed_texts: job.succeeded + job.failed,
            failed_texts: job.failed,
            progress_percentage: progress(job),
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
            estimated_completion_seconds: estimate(job),
            priority: job.priority,
            error: job.error.clone(),
        }
    }
}

/// `page` (from 1) and `page_size` (1 to 1,000, default 100).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BatchPaging {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    pub(crate) page: Option<u64>,
    /// Results per page, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) page_size: Option<u64>,
}

/// Counts over a batch job's results.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchSummary {
    /// Texts in the job.
    pub(crate) total_texts: u64,
    /// Texts with a result.
    pub(crate) successful_predictions: u64,
    /// Texts that failed.
    pub(crate) failed_predictions: u64,
    /// `successful_predictions / total_texts` (`0.0` for no texts).
    pub(crate) success_rate: f64,
    /// Results per label (`POSITIVE`, `NEGATIVE`, `NEUTRAL`, ...).
    pub(crate) sentiment_distribution: BTreeMap<String, u64>,
    /// Mean `score` of the results (`0.0` for none).
    pub(crate) average_confidence: f64,
}

/// One page of a batch job's results.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResults {
    /// The job's id.
    pub(crate) job_id: String,
    /// One per text in order: the model's result, or `{"error": ...}`.
    // Each result is passed through as the store holds its JSON text.
    #[schema(value_type = Vec<serde_json::Value>)]
    pub(crate) results: Vec<RawJson>,
    /// Texts in the job.
    pub(crate) total_results: u64,
    /// This page's number.
    pub(crate) page: u64,
    /// Results per page.
    pub(crate) page_size: u64,
    /// Whether a later page holds more.
    pub(crate) has_more: bool,
    /// Counts over every result of the job.
    pub(crate) summary: BatchSummary,
}

/// One priority's queue in `queue/status` and `metrics`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct BatchQueue {
    /// Unfinished jobs (every tenant's).
    jobs: u64,
    /// The most unfinished jobs it holds.
    limit: u64,
    /// `jobs / limit`.
    utilization: f64,
    /// Texts waiting to be claimed.
    queued_texts: u64,
    /// Texts leased to workers.
    processing_texts: u64,
}

impl From<&QueueDepth> for BatchQueue {
    fn from(d: &QueueDepth) -> Self {
        BatchQueue {
            jobs: d.unfinished_jobs,
            limit: d.limit,
            utilization: if d.limit > 0 {
                d.unfinished_jobs as f64 / d.limit as f64
            } else {
                0.0
            },
            queued_texts: d.queued_items,
            processing_texts: d.in_flight_items,
        }
    }
}

/// The queues by priority name, high first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueuesByPriority {
    /// High priority.
    high: BatchQueue,
    /// Medium priority.
    medium: BatchQueue,
    /// Low priority.
    low: BatchQueue,
}

impl From<&[QueueDepth]> for QueuesByPriority {
    fn from(depths: &[QueueDepth]) -> Self {
        let queue = |p: Priority| {
            depths
                .iter()
                .find(|d| d.priority == p)
                .map(BatchQueue::from)
                .unwrap_or_default()
        };
        QueuesByPriority {
            high: queue(Priority::High),
            medium: queue(Priority::Medium),
            low: queue(Priority::Low),
        }
    }
}

/// `queue/status`: the queues by priority name.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchQueues {
    /// One per priority.
    pub(crate) queues: QueuesByPriority,
    /// Unfinished jobs, every priority.
    pub(crate) total_jobs: u64,
}

/// The engine counters in `metrics`: this process's in-process workers since start.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct BatchEngine {
    /// Handler calls.
    pub(crate) calls: u64,
    /// Items cancelled.
    pub(crate) items_cancelled: u64,
    /// Items dead-lettered.
    pub(crate) items_dead_lettered: u64,
    /// Items that succeeded.
    pub(crate) items_succeeded: u64,
    /// Calls retried.
    pub(crate) retries: u64,
    /// Calls that timed out.
    pub(crate) timeouts: u64,
}

/// `metrics`: the tenant's job figures and the service's queues (see the module docs of
/// the batch routes and `docs/service.md`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchMetrics {
    /// Jobs counted.
    pub(crate) total_jobs: u64,
    /// Pending and processing jobs.
    pub(crate) active_jobs: u64,
    /// Jobs by status.
    pub(crate) jobs_by_status: BTreeMap<String, u64>,
    /// Jobs by priority.
    pub(crate) jobs_by_priority: BTreeMap<String, u64>,
    /// Texts in the jobs counted.
    pub(crate) total_texts: u64,
    /// Texts that ended, succeeded or failed.
    pub(crate) processed_texts: u64,
    /// Texts with a result.
    pub(crate) successful_texts: u64,
    /// Texts dead-lettered.
    pub(crate) failed_texts: u64,
    /// `successful_texts / processed_texts` (`1.0` when none ended).
    pub(crate) success_rate: f64,
    /// Mean `completed_at - started_at` of completed and failed jobs.
    pub(crate) average_processing_time_seconds: f64,
    /// Mean `started_at - created_at` of started jobs.
    pub(crate) average_queue_wait_seconds: f64,
    /// Mean `completed_at - created_at` of completed and failed jobs.
    pub(crate) average_end_to_end_seconds: f64,
    /// Texts ended per second of busy time.
    pub(crate) throughput_tps: f64,
    /// Whether the tenant has more jobs than were counted.
    pub(crate) truncated: bool,
    /// Unfinished jobs, every priority and tenant.
    pub(crate) queue_size: u64,
    /// Texts waiting to be claimed.
    pub(crate) queued_texts: u64,
    /// Texts leased to workers.
    pub(crate) processing_texts: u64,
    /// Per priority, as `queue/status`.
    pub(crate) queues: QueuesByPriority,
    /// The engine counters; `null` when metrics are off.
    pub(crate) engine: Option<BatchEngine>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::{JobId, JobStatus};
    use serde_json::Value;

    fn record(status: JobStatus, created_at: f64) -> JobRecord {
        JobRecord {
            id: JobId::new(),
            tenant: String::new(),
            handler: "sentiment".into(),
            params: Value::Null,
            priority: Priority::Medium,
            status,
            total: 10,
            succeeded: if status == JobStatus::Completed {
                10
            } else {
                0
            },
            failed: 0,
            cancelled: 0,
            created_at,
            started_at: None,
            completed_at: None,
            error: None,
            limits: ferry_store::JobLimits::default(),
        }
    }

    #[test]
    fn status_numbers_keep_their_json_types() {
        // An integral timestamp and a fresh job still serialise as floats (`100.0`, `0.0`).
        let fresh = record(JobStatus::Pending, 1_700_000_000.0);
        let body = serde_json::to_value(JobStatusBody::from(&fresh)).unwrap();
        assert!(body["created_at"].is_f64(), "{body}");
        assert!(body["progress_percentage"].is_f64(), "{body}");
        assert_eq!(body["progress_percentage"], 0.0);
        assert!(body["started_at"].is_null() && body["error"].is_null());
        assert!(body["total_texts"].is_u64() && body["processed_texts"].is_u64());
        assert!(body["estimated_completion_seconds"].is_u64());
        let text = body.to_string();
        assert!(text.contains("\"created_at\":1700000000.0"), "{text}");
        assert!(text.contains("\"progress_percentage\":0.0"), "{text}");
        let done = record(JobStatus::Completed, 1.0);
        let done = serde_json::to_string(&JobStatusBody::from(&done)).unwrap();
        assert!(done.contains("\"progress_percentage\":100.0"), "{done}");
        let keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "job_id",
                "status",
                "total_texts",
                "processed_texts",
                "failed_texts",
                "progress_percentage",
                "created_at",
                "started_at",
                "completed_at",
                "estimated_completion_seconds",
                "priority",
                "error"
            ]
        );
    }

    #[test]
    fn queues_are_named_high_medium_low_in_that_order() {
        let depths = [QueueDepth {
            priority: Priority::Low,
            unfinished_jobs: 1,
            limit: 4,
            queued_items: 3,
            in_flight_items: 0,
        }];
        let text = serde_json::to_string(&QueuesByPriority::from(&depths[..])).unwrap();
        assert_eq!(
            text,
            "{\"high\":{\"jobs\":0,\"limit\":0,\"utilization\":0.0,\"queued_texts\":0,\
             \"processing_texts\":0},\"medium\":{\"jobs\":0,\"limit\":0,\"utilization\":0.0,\
             \"queued_texts\":0,\"processing_texts\":0},\"low\":{\"jobs\":1,\"limit\":4,\
             \"utilization\":0.25,\"queued_texts\":3,\"processing_texts\":0}}"
        );
    }
}
