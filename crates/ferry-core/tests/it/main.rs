//! ferry-core's integration tests: one binary, one module per concern.

mod ceiling;
mod lifecycle;
mod properties;
