//! # ferry-server
//!
//! Ferry's job service: the HTTP API ([`app`]) and the worker that runs the engine over a
//! durable store's claimed items ([`Worker`]).

pub mod api;
mod builtin;
mod cache;
mod error;
mod sweeper;
mod worker;

pub use api::{app, AppState};
pub use builtin::Echo;
pub use cache::Cached;
pub use error::Error;
pub use sweeper::sweep_results;
pub use worker::{Handlers, Worker, WorkerOptions, WorkerReport};
