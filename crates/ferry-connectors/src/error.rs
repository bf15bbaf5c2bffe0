//! The one error type of `ferry-connectors`.
//!
//! Every variant says *where*: the file and line of a job file or a data file, the key, the
//! environment variable, the SQL statement, the URL. Messages never contain secret values.

use std::path::PathBuf;

/// Everything that can go wrong reading sources, calling targets, or loading a job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file has a malformed record.
    #[error("{path}:{line}: {message}")]
    Record {
        /// The data file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A record of a data file that has no line structure (XML) is malformed or cannot be
    /// mapped; `offset` is the byte where the record starts.
    #[error("{origin}: byte {offset}: {message}")]
    RecordAt {
        /// The file (or query row) the record comes from.
        origin: String,
        /// 0-based byte offset of the record's start in its (decompressed) file or document.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A stage of the job's pipeline could not process an item (`[[stage]]`): the item is
    /// dead-lettered with the stage's name and the reason, the others go on.
    #[error("stage `{stage}`: item `{key}`: {message}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// The item's key.
        key: String,
        /// What is wrong.
        message: String,
        /// The item's payload as the stage received it (written to the dead letter).
        payload: Box<serde_json::Value>,
    },
    /// A key column is missing or empty in a record.
    #[error("{origin}: row {row}: key column `{column}` is missing or empty")]
    MissingKey {
        /// File path or query description.
        origin: String,
        /// 1-based row number.
        row: u64,
        /// The key column.
        column: String,
    },
    /// A database could not be reached or a query failed.
    #[error("{context}: {source}")]
    Sql {
        /// What was being done ("running the source query", "connecting to sqlite:...").
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A SQLite query failed (the phases' SQLite source, read without sqlx).
    #[error("{context}: {source}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A job file (or a `--set` override) is invalid. `line` is 0 when unknown (or for a
    /// `--set` override); `key` is empty when the problem is not one key's.
    #[error("{}", config_message(file, *line, key, message))]
    Config {
        /// The job file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// Dotted key.
        key: String,
        /// What was expected.
        message: String,
    },
    /// Several configuration errors, reported together.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),
    /// A required environment variable is not set.
    #[error("environment variable `{name}` is not set ({why})")]
    MissingEnv {
        /// The variable.
        name: String,
        /// What it is needed for.
        why: String,
    },
    /// A template could not be compiled or rendered for an item.
    #[error("template `{template}`{}: {message}", .key.as_ref().map(|k| format!(" for item `{k}`")).unwrap_or_default())]
    Template {
        /// Which template (e.g. `handler.body`).
        template: String,
        /// The item being rendered, if any.
        key: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// A value cannot be shaped for its board column's type (that item's error).
    #[error("column `{column}` ({kind}) of item `{key}`: cannot send {value}: {message}")]
    ColumnValue {
        /// The item.
        key: String,
        /// The board column id, e.g. `country`.
        column: String,
        /// The column's type, e.g. `country`.
        kind: String,
        /// The value, as JSON.
        value: String,
        /// What was expected.
        message: String,
    },
    /// A board's columns could not be read (before any item is sent).
    #[error("{url}: board {board_id}: cannot read its column types: {message}")]
    Board {
        /// The endpoint.
        url: String,
        /// The board.
        board_id: String,
        /// Why.
        message: String,
    },
    /// A source's rows are not in the order the job reads them in (a phase's groups or
    /// series not together).
    #[error("{origin}: {message}")]
    Order {
        /// The source.
        origin: String,
        /// Which rows, and the `ORDER BY` the query needs.
        message: String,
    },
    /// An HTTP request could not be built or the target is unreachable.
    #[error("{url}: {message}")]
    Http {
        /// The target.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] ferry_core::Error),
}

impl Error {
    /// Whether this error concerns one record only (a malformed line or element, a cast that
    /// fails, a missing key): the source goes on after it, and a job dead-letters it unless
    /// `source.on_error = "stop"`.
    pub fn is_record_error(&self) -> bool {
        matches!(
            self,
            Error::Record { .. }
                | Error::RecordAt { .. }
                | Error::MissingKey { .. }
                | Error::Stage { .. }
        )
    }

    /// Where a record error happened, as a stable key (`file:line`, `file@byte`,
    /// `origin#row`, or the item's own key for a stage's error) and a JSON object naming the
    /// source and the position (or the stage and the item); `None` for other errors.
    pub fn record_position(&self) -> Option<(String, serde_json::Value)> {
        use serde_json::json;
        match self {
            Error::Record { path, line, .. } => Some((
                format!("{}:{line}", path.display()),
                json!({"source": path.display().to_string(), "line": line}),
            )),
            Error::RecordAt { origin, offset, .. } => Some((
                format!("{origin}@{offset}"),
                json!({"source": origin, "offset": offset}),
            )),
            Error::MissingKey { origin, row, .. } => Some((
                format!("{origin}#{row}"),
                json!({"source": origin, "row": row}),
            )),
            Error::Stage {
                stage,
                key,
                payload,
                ..
            } => Some((
                key.clone(),
                json!({"stage": stage, "key": key, "item": payload}),
            )),
            _ => None,
        }
    }
}

fn config_message(file: &std::path::Path, line: usize, key: &str, message: &str) -> String {
    let place = if line > 0 {
        format!("{}:{line}", file.display())
    } else {
        file.display().to_string()
    };
    if key.is_empty() {
        format!("{place}: {message}")
    } else {
        format!("{place}: `{key}`: {message}")
    }
}
