//! The typed job spec: what a validated job file becomes, whichever format it was written
//! in. The runner (`run`) reads only these types; the formats (`ferry_format`,
//! `board_update`) produce them.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use ferry_core::{Concurrency, EngineConfig};

use crate::graphql::GraphqlConfig;
use crate::source::KeyBy;
use crate::stage::{GroupStageConfig, StageSettings, XmlStageConfig};

/// Where items come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// A CSV file with a header row.
    Csv {
        /// The file (relative paths are relative to the job file).
        path: PathBuf,
        /// How items are keyed.
        key: KeyBy,
    },
    /// A JSON Lines file.
    Jsonl {
        /// The file.
        path: PathBuf,
        /// How items are keyed.
        key: KeyBy,
    },
    /// A SQL query (SQLite file or PostgreSQL URL), streamed.
    Sql {
        /// `sqlite:path`, a `.db` path, or `postgres://...`.
        url: String,
        /// The query.
        query: String,
        /// How items are keyed.
        key: KeyBy,
    },
    /// XML: files (a glob, `.gz`) or a query's text column; one item per record element.
    Xml {
        /// Where the XML is, the record element, the mapping.
        config: crate::source::XmlConfig,
        /// How items are keyed (by a mapped column).
        key: KeyBy,
    },
}

/// A step of the pipeline between the source and the handler (`[[stage]]`): its type's
/// settings beside the [`StageSettings`] every stage has. Built into a running
/// [`Stage`](crate::stage::Stage) by the runner (`job/stages.rs`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StageSpec {
    /// Parse an XML text field of each item, one output item per record element.
    Xml {
        /// `name`, `workers`, `queue`, `key`.
        settings: StageSettings,
        /// The field, the record element, the mapping.
        config: XmlStageConfig,
    },
    /// Per-ticker indicators of a payload holding one ticker's rows (`docs/indicators.md`).
    Indicators {
        /// `name`, `workers`, `queue`, `key`.
        settings: StageSettings,
        /// The group and rows fields.
        config: GroupStageConfig,
    },
    /// One date's market breadth from a payload holding that date's rows.
    Breadth {
        /// `name`, `workers`, `queue`, `key`.
        settings: StageSettings,
        /// The group and rows fields.
        config: GroupStageConfig,
    },
}

impl StageSpec {
    /// The settings every stage has.
    pub fn settings(&self) -> &StageSettings {
        match self {
            StageSpec::Xml { settings, .. }
            | StageSpec::Indicators { settings, .. }
            | StageSpec::Breadth { settings, .. } => settings,
        }
    }

    /// The settings every stage has, to change (`ferry tune`).
    pub fn settings_mut(&mut self) -> &mut StageSettings {
        match self {
            StageSpec::Xml { settings, .. }
            | StageSpec::Indicators { settings, .. }
            | StageSpec::Breadth { settings, .. } => settings,
        }
    }
}

/// What happens to a source record that cannot be read (`source.on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Write it to the dead-letter file, with its position and the reason, and go on
    /// (the default).
    #[default]
    DeadLetter,
    /// Stop reading at it (what was accepted before it is still finished).
    Stop,
}

/// What is done with each batch.
#[derive(Debug, Clone)]
pub enum HandlerSpec {
    /// GraphQL aliased mutations.
    Graphql(GraphqlConfig),
    /// One templated HTTP request per batch.
    Http(crate::http::HttpConfig),
    /// A child process speaking JSON lines (a handler in any language).
    Exec(crate::exec::ExecConfig),
    /// Insert or upsert into a SQL table.
    Sql(crate::sink::SqlSinkConfig),
    /// PostgreSQL `COPY` into a table and its child tables, idempotent by key.
    PgCopy(crate::sink::CopySinkConfig),
    /// Append each item (and its key) to a JSON Lines file.
    Jsonl {
        /// The output file.
        path: PathBuf,
    },
}

/// The format a job file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobFormat {
    /// Ferry's own job file (`docs/job-file.md`).
    Ferry,
    /// The monday.com board-update format (`[query_config]`, `[column_mapping]`, ...).
    BoardUpdate,
}

impl fmt::Display for JobFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobFormat::Ferry => "ferry",
            JobFormat::BoardUpdate => "monday.com board-update",
        })
    }
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The job's name (default: the file stem).
    pub name: String,
    /// The job file.
    pub path: PathBuf,
    /// The source.
    pub source: SourceSpec,
    /// The stages between the source and the handler, in order (`[[stage]]`; none by
    /// default).
    pub stages: Vec<StageSpec>,
    /// The handler.
    pub handler: HandlerSpec,
    /// What a bad source record does.
    pub on_error: OnError,
    /// The engine's settings.
    pub engine: EngineConfig,
    /// The dead-letter file.
    pub dead_letters: PathBuf,
    /// The checkpoint database (`None`: disabled).
    pub checkpoint: Option<PathBuf>,
    /// The format the file was written in.
    pub format: JobFormat,
}

/// Sets the concurrency cap to `n` (at least 1), keeping an adaptive controller's initial
/// and minimum values under it.
pub(super) fn raise_concurrency(engine: &mut EngineConfig, n: usize) {
    match &mut engine.dispatch.concurrency {
        Concurrency::Adaptive(c) => {
            c.max = n.max(1);
            c.initial = c.initial.min(c.max);
            c.min = c.min.min(c.max);
        }
        Concurrency::Fixed(f) => *f = NonZeroUsize::new(n).unwrap_or(*f),
    }
}
