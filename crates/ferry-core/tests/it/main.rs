//! ferry-core's integration tests: one binary, one module per concern.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod backpressure;
mod ceiling;
mod gateway;
mod lifecycle;
mod properties;
mod recut;
