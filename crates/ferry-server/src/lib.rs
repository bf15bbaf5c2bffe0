//! # ferry-server
//!
//! Ferry's job service. This crate holds the worker that runs the engine over a durable
//! store's claimed items ([`Worker`]); the HTTP API (`ferry serve`) is built on it next.

mod error;
mod worker;

pub use error::Error;
pub use worker::{Handlers, Worker, WorkerOptions, WorkerReport};
