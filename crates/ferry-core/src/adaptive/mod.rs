//! Controllers that learn how hard to push a target nobody described to us.
//!
//! This module owns the feedback loops of the engine; the engine owns when they are fed.
//!
//! * [`ConcurrencyController`] sets how many calls are in flight: AIMD on latency and
//!   back-pressure, after Vector's adaptive request concurrency (ARC), with slow start and an
//!   app-limited guard. Its module docs state the algorithm and every knob of
//!   [`ConcurrencyConfig`].
//! * [`BatchSizeController`] sets how many items a fresh batch carries: toward a target
//!   latency, below a learned ceiling, growing by one probe batch at a time. Its module docs
//!   state the algorithm and every knob of [`BatchSizeConfig`].
//! * [`RateController`] sets how many calls per second leave, once the target has said "too
//!   fast" (429, an exhausted budget): AIMD on a rate, started from what the target accepted.
//!   Its module docs state the algorithm and every knob of [`RateConfig`].
//!
//! All three are plain state machines fed with observations and the current time (no clock of
//! their own, no I/O), so they are tested with scripted inputs and run inside the engine's
//! single event loop. What each finished call tells them is decided in one place, the
//! engine's outcome policy:
//!
//! | call ended with            | [`Signal`] to concurrency            | batch size learns              |
//! |----------------------------|--------------------------------------|--------------------------------|
//! | done                       | `Ok` for a full confirmed-size batch, else `Neutral` | success (latency)  |
//! | retry (429, 5xx)           | `Backpressure`                       | nothing (a probe is handed back) |
//! | split (unnamed bad item)   | `Neutral`                            | too large, if it was the probe |
//! | too large (413, 504)       | `Neutral`                            | too large                      |
//! | per-attempt timeout        | `Backpressure`                       | too large                      |
//! | fatal, panic, abandoned    | `Neutral`                            | nothing (a probe is handed back) |
//!
//! Users configure them through [`EngineConfig`](crate::EngineConfig) (`sizing` and
//! `dispatch.concurrency`); the controllers are public so they can be driven on their own,
//! in simulations of a control loop or in another dispatcher.

mod batch_size;
mod bounds;
mod concurrency;
mod rate;

pub use batch_size::{BatchSizeConfig, BatchSizeController};
pub use concurrency::{ConcurrencyConfig, ConcurrencyController, Signal};
pub use rate::{RateConfig, RateController};
