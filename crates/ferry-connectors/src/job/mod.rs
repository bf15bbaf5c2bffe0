//! Job files and the batch runner behind `ferry run`: loading and validating a job
//! ([`load`]), dry runs ([`dry_run`]), and runs with a resumable checkpoint ([`run`]).
//!
//! A file is parsed into line-numbered leaves (`file`), read through a reader that reports
//! file, line and key (`reader`) by one of the two formats (`ferry_format`, `board_update`)
//! into the typed spec (`spec`) the runner uses; `load` ties these together. `[[stage]]`
//! blocks are read by `stage_format` and run, between the source and the handler, by
//! `stages` (see [`crate::stage`]). A spec becomes a
//! running handler in `handler`, for `ferry run` and the job service alike; `service` reads
//! the service's `[handler.NAME]` tables with the same code.

mod board_update;
mod checkpoint;
mod copy_format;
mod ferry_format;
mod file;
mod handler;
mod load;
pub mod phases;
mod reader;
mod run;
mod service;
mod sources;
mod spec;
mod stage_format;
mod stages;
mod xml_format;

pub(crate) use checkpoint::checkpoint_rows;
pub use checkpoint::{Checkpoint, Status};
pub use handler::{handler_url, SpecHandler};
pub use load::{load, EnvLookup, LoadOptions};
pub use run::{dry_run, run, DryRun, RunOptions, RunSummary};
pub use service::{load_service_handlers, ServiceHandler};
pub use spec::{HandlerSpec, JobConfig, JobFormat, OnError, SourceSpec, StageSpec};
pub use stages::build_stage;
