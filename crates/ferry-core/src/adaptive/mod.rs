//! Controllers that learn how hard to push a target nobody described to us.
//!
//! [`ConcurrencyController`] sets how many calls are in flight (AIMD on latency and
//! back-pressure, after Vector's adaptive request concurrency); [`BatchSizeController`] sets
//! how many items a fresh batch carries (toward a target latency, below a learned ceiling).
//! Both are plain state machines fed with observations and the current time, so they are
//! tested with scripted inputs and run inside the engine's single event loop.

mod batch_size;
mod concurrency;
mod ewma;

pub use batch_size::{BatchSizeConfig, BatchSizeController};
pub use concurrency::{ConcurrencyConfig, ConcurrencyController, Signal};
pub use ewma::MeanVar;
