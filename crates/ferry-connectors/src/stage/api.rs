//! What a stage is ([`Stage`]), how it fails ([`StageError`]), and the settings every stage
//! has ([`StageSettings`]).

use serde_json::Value;

/// A CPU step between the source and the sink.
///
/// `process` runs on a worker thread of the stage's pool, many items at once: it must not
/// block on I/O (a stage that waits on the network belongs in a handler). It may keep state
/// behind its own locks, but items of one stage run in parallel and reach it in no fixed
/// order across workers (they leave the stage in input order).
pub trait Stage: Send + Sync + 'static {
    /// The payloads one item's payload becomes (none drops it), or why it cannot go on: the
    /// item is then dead-lettered with the stage's name and this reason.
    fn process(&self, payload: &Value) -> Result<Vec<Value>, StageError>;

    /// Warnings for the end report (e.g. a mapping path that matched nothing); none by
    /// default.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Why a stage could not process an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError {
    /// What is wrong, for the dead letter and the log.
    pub message: String,
}

impl StageError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        StageError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for StageError {
    fn from(message: String) -> Self {
        StageError { message }
    }
}

/// How a stage keys the items it yields (`stage.N.key`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StageKey {
    /// The input item's key; `KEY/1`, `KEY/2`, ... when it yields several (the default).
    #[default]
    Inherit,
    /// The values of these fields of each output, joined with `/` (a missing or empty one
    /// dead-letters the input item).
    Fields(Vec<String>),
}

/// The settings every stage has: `name`, `workers`, `queue`, `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSettings {
    /// The stage's name in errors, dead letters and the profile (default: its type, with
    /// its position when the type appears twice).
    pub name: String,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// How many items may wait between this stage and the next (the channel's bound).
    pub queue: usize,
    /// How output items are keyed.
    pub key: StageKey,
}

/// `stage.N.queue` when the file does not say: 1024 items, the sources' own bound.
pub const DEFAULT_QUEUE: usize = 1024;

impl StageSettings {
    /// Settings named `name` with the defaults: one worker per core, a queue of 1024, keys
    /// inherited.
    pub fn new(name: impl Into<String>) -> Self {
        StageSettings {
            name: name.into(),
            workers: 0,
            queue: DEFAULT_QUEUE,
            key: StageKey::Inherit,
        }
    }

    /// The worker count, with 0 resolved to the number of cores.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}
