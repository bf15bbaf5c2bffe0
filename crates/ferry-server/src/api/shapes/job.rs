//! The `/v1` API's answers: jobs, their items, queues, dead letters, and the enums they
//! carry. One set of types, serialized by the handlers and described by `/openapi.json`.

use ferry_store::{DeadLetter, ItemStatus, JobRecord, JobStatus, Priority, QueueDepth, ResultRow};
use std::borrow::Cow;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// How `/openapi.json` describes [`Priority`] (utoipa cannot derive a schema for another
/// crate's type): the component `Priority`, a string enum of its names, highest first.
/// Priority fields point here with `#[schema(value_type = PrioritySchema)]`.
pub(crate) enum PrioritySchema {}

impl PartialSchema for PrioritySchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A job's queue priority."))
            .enum_values(Some(Priority::DESCENDING.map(Priority::as_str)))
            .into()
    }
}

impl ToSchema for PrioritySchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Priority")
    }
}

/// Reads a request's optional `priority`, accepting only the names the API documents.
/// [`Priority`]'s own serde also reads the engine's old names `normal` and `urgent` (for
/// files written before the rename); the API never accepted them, and still refuses them.
pub(crate) fn api_priority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
    let Some(name) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    match Priority::DESCENDING
        .into_iter()
        .find(|p| p.as_str() == name)
    {
        Some(p) => Ok(Some(p)),
        None => Err(de::Error::unknown_variant(
            &name,
            &["high", "medium", "low"],
        )),
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = JobStatus)]
pub(crate) enum JobState {
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
pub(crate) enum ItemState {
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

/// A job's item counts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Counts {
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
pub(crate) struct Job {
    /// Identifier (a UUID).
    id: String,
    /// The handler that processes its items.
    handler: String,
    /// Queue priority.
    #[schema(value_type = PrioritySchema)]
    priority: Priority,
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
    /// The handler parameters as submitted (`null` for jobs submitted by the batch
    /// API's `predict`).
    params: Value,
    /// Why it failed, for a failed job.
    error: Option<String>,
}

impl Job {
    /// Whether the job will not change any more (short of a redrive).
    pub(crate) fn is_finished(&self) -> bool {
        matches!(
            self.status,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Percentage of `job`'s items that ended (succeeded, failed or cancelled), rounded to a
/// tenth: `0.0` to `100.0` (`100.0` for a job without items). The `/v1` job's `progress` and
/// the batch API's `progress_percentage`.
pub(crate) fn progress(job: &JobRecord) -> f64 {
    if job.total == 0 {
        return 100.0;
    }
    let ended = job.succeeded + job.failed + job.cancelled;
    (ended as f64 * 1000.0 / job.total as f64).round() / 10.0
}

impl From<&JobRecord> for Job {
    fn from(j: &JobRecord) -> Self {
        Job {
            id: j.id.to_string(),
            handler: j.handler.clone(),
            priority: j.priority,
            status: j.status.into(),
            counts: Counts {
                total: j.total,
                succeeded: j.succeeded,
                failed: j.failed,
                cancelled: j.cancelled,
            },
            progress: progress(j),
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
pub(crate) struct JobPage {
    /// The jobs.
    pub(crate) items: Vec<Job>,
    /// The `cursor` of the next page; `null` on the last.
    pub(crate) next_cursor: Option<i64>,
}

/// One item of a job with its outcome.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemResult {
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
pub(crate) struct ResultPage {
    /// The job.
    pub(crate) job_id: String,
    /// Its items.
    pub(crate) items: Vec<ItemResult>,
    /// The `cursor` of the next page; `null` on the last.
    pub(crate) next_cursor: Option<i64>,
}

/// One priority's queue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Queue {
    /// The priority.
    #[schema(value_type = PrioritySchema)]
    priority: Priority,
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
            priority: d.priority,
            unfinished_jobs: d.unfinished_jobs,
            limit: d.limit,
            queued_items: d.queued_items,
            in_flight_items: d.in_flight_items,
        }
    }
}

/// The queues, high priority first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Queues {
    /// One per priority.
    pub(crate) queues: Vec<Queue>,
}

/// A dead-lettered item.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadItem {
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
pub(crate) struct DeadLetterPage {
    /// The dead letters.
    pub(crate) items: Vec<DeadItem>,
    /// The `cursor` of the next page; `null` on the last.
    pub(crate) next_cursor: Option<i64>,
}

/// How many dead letters were queued again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Redriven {
    /// Items queued again (ids that are not the tenant's dead letters are skipped).
    pub(crate) redriven: u64,
}

/// The handlers jobs may name.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HandlerList {
    /// Their names, sorted.
    pub(crate) handlers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::JobId;
    use serde_json::json;

    /// `/openapi.json`'s `Priority` component is the enum it always was.
    #[test]
    fn priority_schema_is_the_api_enum() {
        let schema = serde_json::to_value(PrioritySchema::schema()).unwrap();
        assert_eq!(schema["type"], json!("string"));
        assert_eq!(schema["enum"], json!(["high", "medium", "low"]));
        assert_eq!(PrioritySchema::name(), "Priority");
    }

    /// Requests take the three names only; the engine's old aliases stay refused.
    #[test]
    fn requests_take_only_the_documented_names() {
        #[derive(Debug, Deserialize)]
        struct Body {
            #[serde(default, deserialize_with = "api_priority")]
            priority: Option<Priority>,
        }
        let read = |text: &str| serde_json::from_str::<Body>(text).map(|b| b.priority);
        let table = [
            (r#"{}"#, Some(None)),
            (r#"{"priority": null}"#, Some(None)),
            (r#"{"priority": "high"}"#, Some(Some(Priority::High))),
            (r#"{"priority": "medium"}"#, Some(Some(Priority::Medium))),
            (r#"{"priority": "low"}"#, Some(Some(Priority::Low))),
            (r#"{"priority": "urgent"}"#, None),
            (r#"{"priority": "normal"}"#, None),
            (r#"{"priority": "HIGH"}"#, None),
            (r#"{"priority": 1}"#, None),
        ];
        for (text, want) in table {
            assert_eq!(read(text).ok(), want, "{text}");
        }
        let err = read(r#"{"priority": "urgent"}"#).unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `urgent`, expected one of `high`, `medium`, `low`"),
            "{err}"
        );
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
            limits: ferry_store::JobLimits::default(),
        };
        let job = Job::from(&record);
        assert_eq!(job.progress, 33.3);
        assert_eq!(job.priority, Priority::Low);
        assert_eq!(job.status, JobState::Processing);
    }
}
