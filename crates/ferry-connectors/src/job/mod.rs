//! Job files and the batch runner behind `ferry run`: loading and validating a job
//! ([`load`]), dry runs ([`dry_run`]), and runs with a resumable checkpoint ([`run`]).

mod checkpoint;
mod config;
mod file;
mod run;

pub use checkpoint::{Checkpoint, Status};
pub use config::{load, EnvLookup, HandlerSpec, JobConfig, LoadOptions, SourceSpec};
pub use run::{dry_run, run, DryRun, RunOptions, RunSummary};
