//! Phased jobs: `[[phase]]` blocks in a job file, each a group-by SQL source -> a built-in
//! CPU stage (`indicators`, `breadth`) -> a SQL sink, run one after another in `after`
//! order with a checkpoint per phase (`docs/phases.md`).
//!
//! `config` reads the file, `group` streams a query's rows as groups (or through `fold`,
//! the `breadth` stage folding a ticker-ordered stream), `stage` computes,
//! `handler` runs the stage and writes a batch in one transaction (`db`), `runner` runs the
//! phases through the engine.
//!
//! This is the phases' own minimal pipeline (one stage per phase, stages built in); the
//! general `[[stage]]` blocks of job files are a separate piece of work.

mod config;
mod db;
mod fold;
mod group;
mod handler;
mod runner;
mod stage;

pub use config::{is_phased, load_phased, parse_phased, Phase, PhasedJob};
pub use group::RowsRead;
pub use runner::{run_phases, PhaseOptions, PhaseState, PhaseSummary};
pub use stage::StageKind;
