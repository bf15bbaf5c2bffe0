//! Stages: the CPU steps of a job's pipeline, `source -> [[stage]]... -> handler`.
//!
//! A [`Stage`] takes one item's payload and yields zero or more payloads for the next step,
//! or a [`StageError`] that dead-letters the item with the stage's name and the reason. It
//! knows nothing of channels or threads: [`run_stage`] runs it on a thread pool of its own
//! (rayon, `workers` threads, by default one per core) between two bounded channels, so
//! back-pressure runs end to end from the sink to the source, and parsing goes on while the
//! sink's calls are in flight. Items leave a stage in the order they came in.
//!
//! Adding a stage type: a struct implementing [`Stage`], a `StageSpec` variant
//! (`job/spec.rs`) holding its [`StageSettings`] and its own settings, the arm that reads its
//! keys (`job/stage_format.rs`), and the arm that builds it (`job/stages.rs`).
//!
//! What each stage did is counted in [`StageStats`] and summed up, with the source and the
//! sink, in a [`Profile`]: busy and idle shares, items in and out, queue depth over time,
//! and the bottleneck.

mod api;
mod market;
mod profile;
mod runner;
mod xml;

pub use api::{Stage, StageError, StageKey, StageSettings, DEFAULT_QUEUE};
pub use market::{BreadthStage, GroupStageConfig, IndicatorsStage};
pub(crate) use profile::mean_max;
pub use profile::{
    Latency, NodeProfile, Profile, QueueSample, SourceGate, SourceMeter, StageStats, MAX_SAMPLES,
};
pub use runner::run_stage;
pub use xml::{XmlStage, XmlStageConfig};
