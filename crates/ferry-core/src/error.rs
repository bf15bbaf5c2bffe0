//! The one error type of `ferry-core`.
//!
//! Configuration errors name the key that is wrong, so the runner can point at the line of a
//! job file; I/O errors come from the dead-letter sinks.

use std::io;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or inconsistent with another one.
    #[error("invalid configuration `{key}`: {message}")]
    InvalidConfig {
        /// Dotted name of the offending key, e.g. `batch.max_items`.
        key: &'static str,
        /// What was expected.
        message: String,
    },
    /// Writing a dead letter failed.
    #[error("dead-letter sink: {0}")]
    DeadLetter(#[source] io::Error),
    /// Serializing a dead letter failed.
    #[error("dead-letter encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The engine has stopped and takes no more items.
    #[error("the engine is closed and accepts no more items")]
    Closed,
    /// The engine's task ended abnormally (it panicked or was aborted).
    #[error("engine task failed: {0}")]
    Task(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn config(key: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            key,
            message: message.into(),
        }
    }
}
