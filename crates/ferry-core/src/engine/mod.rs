//! The engine: items in, batches dispatched to a [`Handler`](crate::Handler), every item
//! settled exactly once.
//!
//! [`Engine`] is configured with an [`EngineConfig`] (or a preset) and a handler, then
//! [`started`](Engine::start): producers push items through an [`Intake`] (back-pressured),
//! settled outcomes come out per batch as [`Settled`] values when asked for, dead letters go
//! to a [`DeadLetterSink`](crate::DeadLetterSink), and progress is a `watch` channel.
//! [`Running::finish`] closes intake, drains, and returns the [`Report`].

mod config;
mod core;
mod handle;
mod report;

pub use config::{BatchSizing, EngineConfig};
pub use handle::{Engine, Intake, Running, Settled};
pub use report::Report;
