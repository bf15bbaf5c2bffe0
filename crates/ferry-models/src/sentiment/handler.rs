//! Engine handlers that score a batch of texts.
//!
//! Scoring is CPU work, so each batch is moved to tokio's blocking pool
//! (`spawn_blocking`, one task per batch) and the runtime's workers stay free to keep I/O in
//! flight; results come back in the batch's order. The texts are copied out of the batch
//! first, because the blocking task must own what it reads.

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, ItemOutcome};
use serde_json::Value;
use tokio::task::JoinError;

use super::prediction::{predict, Prediction};

/// The error for a [`SentimentJsonHandler`] payload that carries no text.
pub const EXPECTED_TEXT: &str = "expected a string or an object with a text field";

/// Scores payloads that are strings (`String`, `&'static str`, `Arc<str>`, anything
/// `AsRef<str>`) into [`Prediction`]s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ferry_core::Error> {
/// use ferry_core::{Engine, EngineConfig, Item};
/// use ferry_models::sentiment::SentimentHandler;
/// let texts = ["The book was good.", "Today SUX!"];
/// let items = texts.iter().enumerate().map(|(i, t)| Item::new(i as u64, i as u64, t.to_string()));
/// let report = Engine::new(EngineConfig::standard(), SentimentHandler::new())?
///     .run_iter(items)
///     .await?;
/// assert_eq!(report.progress.succeeded, 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SentimentHandler {
    _private: (),
}

impl SentimentHandler {
    /// A handler scoring with [`analyze`](super::analyze).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T> Handler<T, Prediction> for SentimentHandler
where
    T: AsRef<str> + Send + Sync + 'static,
{
    fn call<'a>(&'a self, batch: &'a Batch<T>) -> BoxFuture<'a, BatchOutcome<Prediction>> {
        let texts: Vec<String> = batch.payloads().map(|t| t.as_ref().to_owned()).collect();
        Box::pin(async move {
            let scored = tokio::task::spawn_blocking(move || {
                texts.iter().map(|t| predict(t)).collect::<Vec<_>>()
            })
            .await;
            match scored {
                Ok(predictions) => BatchOutcome::ok(predictions),
                Err(e) => join_failure(e),
            }
        })
    }
}

/// Scores JSON payloads, as the CLI and the job service carry them: a string, or an object
/// with a string `"text"` field. The result is the [`Prediction`] as JSON. A payload with no
/// text fails alone with [`ItemOutcome::Fatal`]`(`[`EXPECTED_TEXT`]`)`; its neighbours are
/// scored.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ferry_core::Error> {
/// use ferry_core::{Engine, EngineConfig, Item};
/// use ferry_models::sentiment::SentimentJsonHandler;
/// use serde_json::json;
/// let items = vec![
///     Item::new("a", 0, json!("The book was good.")),
///     Item::new("b", 1, json!({"text": "Today SUX!", "id": 7})),
///     Item::new("c", 2, json!(42)),
/// ];
/// let report = Engine::new(EngineConfig::standard(), SentimentJsonHandler::new())?
///     .run_iter(items)
///     .await?;
/// assert_eq!((report.progress.succeeded, report.progress.dead_lettered), (2, 1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SentimentJsonHandler {
    _private: (),
}

impl SentimentJsonHandler {
    /// A handler scoring with [`analyze`](super::analyze).
    pub fn new() -> Self {
        Self::default()
    }
}

/// The text a JSON payload carries: the payload itself if it is a string, else its `"text"`
/// field if that is a string.
pub fn payload_text(payload: &Value) -> Option<&str> {
    match payload {
        Value::String(s) => Some(s),
        Value::Object(map) => map.get("text").and_then(Value::as_str),
        _ => None,
    }
}

impl Handler<Value, Value> for SentimentJsonHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let texts: Vec<Option<String>> = batch
            .payloads()
            .map(|p| payload_text(p).map(str::to_owned))
            .collect();
        Box::pin(async move {
            let scored = tokio::task::spawn_blocking(move || {
                texts
                    .iter()
                    .map(|text| match text {
                        Some(text) => match serde_json::to_value(predict(text)) {
                            Ok(v) => ItemOutcome::Ok(v),
                            Err(e) => ItemOutcome::Fatal(format!("serialising prediction: {e}")),
                        },
                        None => ItemOutcome::Fatal(EXPECTED_TEXT.to_owned()),
                    })
                    .collect()
            })
            .await;
            match scored {
                Ok(outcomes) => BatchOutcome::Done(outcomes),
                Err(e) => join_failure(e),
            }
        })
    }
}

/// A scoring task that panicked is treated like a panicking handler (split, so the text that
/// caused it is isolated and dead-lettered); one cancelled by a runtime shutdown is retried.
fn join_failure<R>(e: JoinError) -> BatchOutcome<R> {
    if e.is_panic() {
        BatchOutcome::split(format!("sentiment scoring panicked: {e}"))
    } else {
        BatchOutcome::retry(None, format!("sentiment scoring was cancelled: {e}"))
    }
}
