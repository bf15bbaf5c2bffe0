//! # ferry-server
//!
//! Ferry's job service: the HTTP API ([`app`]), the worker that runs the engine over a
//! durable store's claimed items ([`Worker`]), and both assembled as `ferry serve` runs them
//! ([`Service`]) and as `ferry worker` does ([`run_worker`]).

pub mod api;
pub mod batch_metrics;
mod builtin;
mod cache;
mod error;
mod retry;
mod service;
mod sweeper;
mod tracking;
mod worker;
mod worker_http;

pub use api::{app, AppState};
pub use builtin::{Echo, Sleep};
pub use cache::{CacheOptions, Cached};
pub use error::Error;
pub use service::{run_worker, run_worker_with, BatchApiOptions, ServeOptions, Service, WorkerRun};
pub use sweeper::{expire_jobs, sweep_results};
pub use worker::{Handlers, Worker, WorkerOptions, WorkerReport};
pub use worker_http::worker_routes;
