//! # ferry-server
//!
//! Ferry's job service: the HTTP API ([`app`]) and the worker that runs the engine over a
//! durable store's claimed items ([`Worker`]).

pub mod api;
mod builtin;
mod error;
mod worker;

pub use api::{app, AppState};
pub use builtin::Echo;
pub use error::Error;
pub use worker::{Handlers, Worker, WorkerOptions, WorkerReport};
