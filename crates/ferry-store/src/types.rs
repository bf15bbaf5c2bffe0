//! The values that cross the [`Store`](crate::Store) boundary: what a client submits, what a
//! worker claims, and what the service reads back. Plain data, serde-ready, no database
//! types, so the server and the worker never see a row.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job's identifier: a random (version 4) UUID in its lowercase hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A fresh random identifier.
    pub fn new() -> Self {
        JobId(uuid_v4())
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any text is accepted: an identifier that names no job simply finds nothing.
impl From<String> for JobId {
    fn from(id: String) -> Self {
        JobId(id)
    }
}

impl From<&str> for JobId {
    fn from(id: &str) -> Self {
        JobId(id.to_owned())
    }
}

/// A version 4 UUID from the operating system's random source.
pub(crate) fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// A job's priority: the one [`ferry_core::Priority`] (`"high"`, `"medium"`, `"low"`;
/// default medium). High jobs get 4/7 of every claim, medium 2/7, low 1/7, so low is never
/// starved (see the crate docs' priority rule); a claimed item keeps its job's priority all
/// the way into the engine.
pub use ferry_core::Priority;

/// The store's encoding of a [`Priority`], in the database and in its per-priority arrays:
/// `High` = 0, `Medium` = 1, `Low` = 2 (highest first, like [`Priority::DESCENDING`]).
///
/// It is deliberately not [`Priority::index`] (which counts from `Low`): this is the
/// encoding the store has always written, so existing databases read the same.
pub(crate) fn db_index(p: Priority) -> usize {
    match p {
        Priority::High => 0,
        Priority::Medium => 1,
        Priority::Low => 2,
    }
}

/// The priority stored as `i` (see [`db_index`]); `None` for a value no store writes.
pub(crate) fn from_db_index(i: i64) -> Option<Priority> {
    Priority::DESCENDING.get(usize::try_from(i).ok()?).copied()
}

/// Where a job stands. Derived from its items, never set by a client except by cancelling:
///
/// - `Pending` until a worker claims one of its items;
/// - `Processing` while any item is queued or in flight;
/// - once every item has ended: `Failed` if every item was dead-lettered, otherwise
///   `Completed` (some items may have failed: see [`JobRecord::failed`]). A job with no items
///   is `Completed` at once;
/// - `Cancelled` from [`Store::cancel_job`](crate::Store::cancel_job) on, whatever happens to
///   the items that were in flight.
///
/// A redriven dead letter takes a finished job back to `Processing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// No item claimed yet.
    Pending,
    /// Some item claimed, some not ended.
    Processing,
    /// Every item ended and at least one succeeded (or there were none).
    Completed,
    /// Every item was dead-lettered.
    Failed,
    /// Cancelled by the client.
    Cancelled,
}

impl JobStatus {
    /// The lowercase name (also the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not change any more (short of a redrive).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => JobStatus::Pending,
            "processing" => JobStatus::Processing,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
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

impl ItemStatus {
    pub(crate) fn from_state(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => ItemStatus::Queued,
            "leased" => ItemStatus::Processing,
            "done" => ItemStatus::Succeeded,
            "dead" => ItemStatus::Failed,
            "cancelled" => ItemStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One item of a new job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewItem {
    /// Unique within the job; results are recorded against it.
    pub key: String,
    /// What the handler receives.
    pub payload: Value,
}

/// A job's own limits (the KubeSentiment-compatible batch API's `timeout_seconds` and
/// `max_batch_size`); both `None` by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct JobLimits {
    /// Seconds from its creation within which the job must finish: past it,
    /// [`Store::expire_overdue`](crate::Store::expire_overdue) fails the job and cancels its
    /// queued items.
    pub timeout_seconds: Option<f64>,
    /// Most of the job's items in one handler call (workers cap its batches at it).
    pub max_batch_size: Option<u64>,
}

/// A job to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// The owning tenant; `""` when the service runs without API keys.
    pub tenant: String,
    /// The handler that processes the items (a name the worker knows).
    pub handler: String,
    /// Parameters passed to the handler with every item.
    pub params: Value,
    /// Queue priority.
    pub priority: Priority,
    /// The items, in the order results are reported.
    pub items: Vec<NewItem>,
    /// A client's retry token: a second job with the same tenant and key returns the first.
    pub idempotency_key: Option<String>,
    /// Its deadline and batch-size cap.
    #[serde(default)]
    pub limits: JobLimits,
}

/// What [`Store::submit_job`](crate::Store::submit_job) did.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The job: the new one, or the one its idempotency key already names.
    pub job: JobRecord,
    /// `true` when this call created the job; `false` when it returned an existing job of
    /// the same tenant and idempotency key.
    pub created: bool,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Identifier.
    pub id: JobId,
    /// Owning tenant (`""`: none).
    pub tenant: String,
    /// Handler name.
    pub handler: String,
    /// Handler parameters.
    pub params: Value,
    /// Queue priority.
    pub priority: Priority,
    /// Derived status (see [`JobStatus`]).
    pub status: JobStatus,
    /// Number of items.
    pub total: u64,
    /// Items whose result is recorded.
    pub succeeded: u64,
    /// Items dead-lettered.
    pub failed: u64,
    /// Items cancelled with the job.
    pub cancelled: u64,
    /// When it was created (seconds since the Unix epoch).
    pub created_at: f64,
    /// When its first item was claimed.
    pub started_at: Option<f64>,
    /// When its last item ended, or when it was cancelled.
    pub completed_at: Option<f64>,
    /// Why it failed, for a `Failed` job.
    pub error: Option<String>,
    /// Its deadline and batch-size cap, as submitted.
    #[serde(default)]
    pub limits: JobLimits,
}

/// An item leased to a worker, with what it needs to process it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedItem {
    /// The item's job.
    pub job_id: JobId,
    /// The job's tenant.
    pub tenant: String,
    /// The item's identifier (what `complete`, `fail` take).
    pub item_id: i64,
    /// The item's key.
    pub key: String,
    /// The item's payload.
    pub payload: Value,
    /// The job's handler.
    pub handler: String,
    /// The job's handler parameters.
    pub params: Value,
    /// The job's priority.
    pub priority: Priority,
    /// Claims of this item so far, this one included (1 on the first claim).
    pub attempts: u32,
    /// The job's cap on items per handler call ([`JobLimits::max_batch_size`]).
    #[serde(default)]
    pub max_batch_size: Option<u64>,
}

/// One item of a job as the client sees it; `R` is how its result is held: parsed
/// (`Value`, the default) or as the JSON text stored ([`RawJson`], for passing it through).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow<R = Value> {
    /// The item's identifier (also the paging cursor).
    pub item_id: i64,
    /// The item's key.
    pub key: String,
    /// The recorded result, for a succeeded item.
    pub result: Option<R>,
    /// The last error: the dead-letter reason for a failed item, or why the last attempt of
    /// a queued item failed.
    pub error: Option<String>,
    /// Where the item stands.
    pub status: ItemStatus,
}

/// A JSON value kept as its text (checked to be JSON, not parsed into a [`Value`]).
pub type RawJson = Box<serde_json::value::RawValue>;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass this back as the cursor for the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// A dead-lettered item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The item's identifier (what `redrive` takes; also the paging cursor).
    pub item_id: i64,
    /// The item's job.
    pub job_id: JobId,
    /// The item's key.
    pub key: String,
    /// The item's payload.
    pub payload: Value,
    /// Why it was dead-lettered.
    pub error: String,
    /// Claims made before it was dead-lettered.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub dead_at: f64,
}

/// What [`Store::fail`](crate::Store::fail) did with the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back in the queue, claimable from `retry_after` on.
    Retrying,
    /// In the dead letters.
    DeadLettered,
    /// Its job was cancelled meanwhile: the item ended as cancelled.
    Cancelled,
    /// The worker does not hold the item's lease (it was rescued, or never claimed): nothing
    /// changed.
    NotLeased,
}

/// One priority's queue, for `/queue/status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// The priority.
    pub priority: Priority,
    /// Jobs pending or processing.
    pub unfinished_jobs: u64,
    /// The configured maximum of unfinished jobs.
    pub limit: u64,
    /// Items waiting to be claimed.
    pub queued_items: u64,
    /// Items leased to workers.
    pub in_flight_items: u64,
}

/// An API key as listed (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Identifier (what `revoke_key` takes).
    pub id: String,
    /// The tenant the key authenticates.
    pub tenant: String,
    /// A label chosen when it was created.
    pub name: String,
    /// When it was created.
    pub created_at: f64,
    /// When it was revoked.
    pub revoked_at: Option<f64>,
}

/// A new API key, with the only copy of its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedKey {
    /// The stored key.
    pub key: ApiKey,
    /// The secret to hand to the client: shown once, stored only as a SHA-256 hash.
    pub plaintext: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let id = JobId::new();
        let s = id.as_str();
        assert_eq!(s.len(), 36);
        let parts: Vec<&str> = s.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(JobId::new(), id);
    }

    #[test]
    fn enums_serialize_lowercase() {
        assert_eq!(serde_json::to_string(&Priority::High).unwrap(), "\"high\"");
        assert_eq!(
            serde_json::to_string(&JobStatus::Cancelled).unwrap(),
            "\"cancelled\""
        );
    }

    /// The database encoding is the one the store wrote before the priority types were
    /// unified: high 0, medium 1, low 2; nothing else decodes.
    #[test]
    fn database_encoding_is_unchanged() {
        let table = [
            (Priority::High, 0),
            (Priority::Medium, 1),
            (Priority::Low, 2),
        ];
        for (p, stored) in table {
            assert_eq!(db_index(p), stored);
            assert_eq!(from_db_index(stored as i64), Some(p));
        }
        for p in Priority::DESCENDING {
            assert_eq!(Priority::DESCENDING[db_index(p)], p);
        }
        assert_eq!(from_db_index(-1), None);
        assert_eq!(from_db_index(3), None);
    }
}
