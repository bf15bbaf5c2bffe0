//! The job's source as the runner sees it: opening and counting it, and dead-lettering the
//! records it cannot read (`source.on_error`).

use std::sync::Arc;

use ferry_core::{DeadLetter, DeadLetterSink, Item, JsonlDeadLetters};
use serde_json::Value;

use super::checkpoint::{Checkpoint, Status};
use super::spec::SourceSpec;
use crate::error::Error;
use crate::source::{self, ItemStream, XmlStats};

/// How many items the source holds, for the progress bar and ETA (`None` if counting fails:
/// the run goes on without a total).
pub(super) async fn count_source(spec: &SourceSpec) -> Option<u64> {
    let counted = match spec {
        SourceSpec::Csv { path, .. } => source::count_lines(path, true),
        SourceSpec::Jsonl { path, .. } => source::count_lines(path, false),
        SourceSpec::Sql { url, query, .. } => source::sql_count(url, query).await,
        SourceSpec::Xml { config, .. } => match &config.input {
            // One record per row, as a rule; a row with several makes the total low.
            source::XmlInput::Query { url, query, .. } => source::sql_count(url, query).await,
            // Counting records means reading the files: the run goes without a total.
            source::XmlInput::Files(_) => return None,
        },
    };
    match counted {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "could not count the source's items; progress has no total");
            None
        }
    }
}

/// Opens the source's stream; an XML source also gives its counters (for the warnings
/// about paths that never match).
pub(super) async fn open_source(
    spec: &SourceSpec,
) -> Result<(ItemStream, Option<Arc<XmlStats>>), Error> {
    Ok(match spec {
        SourceSpec::Csv { path, key } => (source::csv(path, key.clone())?, None),
        SourceSpec::Jsonl { path, key } => (source::jsonl(path, key.clone())?, None),
        SourceSpec::Sql { url, query, key } => (source::sql(url, query, key.clone()).await?, None),
        SourceSpec::Xml { config, key } => {
            let (stream, stats) = source::xml(config, key.clone()).await?;
            (stream, Some(stats))
        }
    })
}

/// Writes the source's bad records to the job's dead-letter file (one line each, with the
/// position and the reason) and to the checkpoint, so a resumed run does not write them
/// again.
pub(super) struct BadRecords {
    letters: JsonlDeadLetters,
    checkpoint: Option<Checkpoint>,
    count: u64,
}

impl BadRecords {
    /// Bad records go to `dead_letters` (appended) and are recorded in `checkpoint`.
    pub(super) fn new(dead_letters: &std::path::Path, checkpoint: Option<Checkpoint>) -> Self {
        BadRecords {
            letters: JsonlDeadLetters::new(dead_letters),
            checkpoint,
            count: 0,
        }
    }

    /// Dead-letters the record `e` is about (`e` must be a record error). `done` holds the
    /// keys a resumed run skips: a bad record already written is not written again.
    pub(super) async fn write(
        &mut self,
        e: &Error,
        done: &std::collections::HashSet<String>,
    ) -> Result<bool, Error> {
        let Some((key, mut payload)) = e.record_position() else {
            return Ok(false);
        };
        if done.contains(&key) {
            return Ok(false);
        }
        if let Value::Object(map) = &mut payload {
            map.insert("bad_record".into(), Value::Bool(true));
        }
        let letter = DeadLetter {
            item: Item::new(key.as_str(), self.count, payload),
            error: e.to_string(),
            attempts: 0,
            first_attempt_at: None,
            dead_at: std::time::SystemTime::now(),
        };
        self.letters.write(std::slice::from_ref(&letter)).await?;
        if let Some(c) = &self.checkpoint {
            c.record(&[(key, Status::DeadLettered, Some(e.to_string()))])
                .await?;
        }
        self.count += 1;
        Ok(true)
    }

    /// How many were written.
    pub(super) fn count(&self) -> u64 {
        self.count
    }
}
