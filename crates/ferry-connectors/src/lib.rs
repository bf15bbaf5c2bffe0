//! # ferry-connectors
//!
//! Sources and sinks for Ferry's engine: CSV, JSON Lines and SQL sources; GraphQL
//! aliased-mutation batches; HTTP outcome classification; templates.

pub mod classify;
mod error;
pub mod exec;
pub mod graphql;
pub mod http;
pub mod job;
pub mod monday;
pub mod sink;
pub mod source;
pub mod stage;
pub mod template;

pub use error::Error;
