//! # ferry-server
//!
//! Ferry's job service: the HTTP API ([`app`]), the worker that runs the engine over a
//! durable store's claimed items ([`Worker`]), and both assembled as `ferry serve` runs them
//! ([`Service`]) and as `ferry worker` does ([`run_worker`]).

pub mod api;
mod builtin;
mod cache;
mod error;
mod service;
mod sweeper;
mod worker;

pub use api::{app, AppState};
pub use builtin::{Echo, Sleep};
pub use cache::Cached;
pub use error::Error;
pub use service::{run_worker, ServeOptions, Service};
pub use sweeper::sweep_results;
pub use worker::{Handlers, Worker, WorkerOptions, WorkerReport};
