//! The engine: items in, batches dispatched to a [`Handler`](crate::Handler), every item
//! settled exactly once.
//!
//! [`Engine`] is configured with an [`EngineConfig`] (or a preset) and a handler, then
//! [`started`](Engine::start): producers push items through an [`Intake`] (back-pressured),
//! settled outcomes come out per batch as [`Settled`] values when asked for, dead letters go
//! to a [`DeadLetterSink`](crate::DeadLetterSink), and progress is a `watch` channel.
//! [`Running::finish`] closes intake, drains, and returns the [`Report`].
//!
//! Inside, each module only uses the ones listed after it: `handle` (the public handles)
//! starts `core` (the event loop), which reads `intake` (the channels from producers, and
//! the room left in them), runs `call` (one handler call as a task), keeps `backoff` (batches waiting out a retry delay), `isolate` (the search for an item a failed batch does not name) and `controllers` (the concurrency
//! limit and batch size, fixed or adaptive), and records into `settled` (how items end), `metrics` and
//! `report`; `config` is read by all of them. What to do with a finished call is
//! decided by [`policy`](crate::policy), outside the engine.

mod backoff;
mod call;
mod config;
mod controllers;
mod core;
mod handle;
mod intake;
mod isolate;
mod metrics;
mod report;
mod settled;

pub use config::{BatchSizing, EngineConfig};
pub use handle::{Engine, Running};
pub use intake::Intake;
pub use report::Report;
pub use settled::Settled;
