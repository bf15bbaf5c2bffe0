//! # ferry-core
//!
//! Ferry's batch engine. It moves many items through a slow, rate-limited, failure-prone
//! target (an API, a database, a model) as fast as the target allows: in batches, with
//! adaptive concurrency and batch size, rate limits, per-attempt timeouts, retries with
//! backoff that honour `Retry-After`, split-on-failure that isolates poison items, dead
//! letters, and a ledger in which every accepted item ends exactly once.
//!
//! A ferry leaves when it is full or when it is time: that is the whole batching idea.
//!
//! The crate has no database, HTTP or CLI dependency; connectors and the service build on it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ferry_core::Error> {
//! use ferry_core::{handler_fn, BatchOutcome, Engine, EngineConfig, Item};
//!
//! // A handler sends one batch and classifies what came back.
//! let handler = handler_fn(|batch: &ferry_core::Batch<String>| {
//!     let lens: Vec<usize> = batch.payloads().map(String::len).collect();
//!     Box::pin(async move { BatchOutcome::ok(lens) })
//! });
//! let items = (0..100u64).map(|i| Item::new(i, i, format!("record {i}")));
//! let report = Engine::new(EngineConfig::standard(), handler)?
//!     .run_iter(items)
//!     .await?;
//! assert_eq!(report.progress.succeeded, 100);
//! # Ok(()) }
//! ```
//!
//! ## What is public, and what is not
//!
//! The crate root exports what a library user touches, and nothing else:
//!
//! * **running**: [`Engine`] (with [`run`](Engine::run) for a stream of items,
//!   [`run_iter`](Engine::run_iter) for an iterator, or [`start`](Engine::start) for
//!   producers of its own), [`Intake`], [`Running`], [`Settled`], [`Report`], [`Progress`],
//!   [`StageReport`], [`Error`];
//! * **the data**: [`Item`], [`Key`], [`Priority`], [`Batch`];
//! * **the handler**: [`Handler`], [`handler_fn`] (and its [`HandlerFn`]), [`BoxFuture`],
//!   [`BatchOutcome`], [`ItemOutcome`];
//! * **configuration**: [`EngineConfig`] and its parts [`FlushPolicy`], [`MemoryLimits`],
//!   [`BatchSizing`], [`DispatchConfig`], [`Concurrency`], [`RateLimits`], [`RetryPolicy`],
//!   [`SplitStrategy`]; [`Throttle`], to share rate limits and the `Retry-After` gate
//!   between engines;
//! * **dead letters**: [`DeadLetter`], [`DeadLetterSink`], [`JsonlDeadLetters`],
//!   [`MemoryDeadLetters`];
//! * [`Batcher`], the batching on its own as a stream adapter.
//!
//! Three modules stay namespaced: [`adaptive`] (the controllers' configurations, and the
//! controllers themselves for simulations), [`pipeline`] (stages joined by bounded channels)
//! and [`testing`] (a simulated remote API for demos, examples, benchmarks and tests; it is
//! not part of the engine and the engine never uses it).
//!
//! Internal on purpose: the buffer the event loop cuts batches from, the ledger that keeps the
//! counts, per-stage profiling, flush reasons, the throttle's permit calls, backoff arithmetic
//! and the outcome policy (which rule turns a call's outcome into a retry, a split or a dead
//! letter). They change with the engine; what users see of them is [`Progress`], [`Report`]
//! and the configuration. A test that needs a [`Batch`] builds one with [`Batch::new`].
//!
//! ## Modules, bottom up
//!
//! `item` (items, keys, priorities, batches), `error`, `outcome` (what a handler says),
//! `flush` and `batcher` (when a batch leaves), `split` and `retry` (how failed batches are
//! cut and backed off), `adaptive` (the controllers), `dispatch` (concurrency settings and
//! the shared throttle), `policy` (outcome -> action), `progress` and `ledger` (counts),
//! `profile`, `deadletter`, `engine` (the event loop and its handles), `pipeline`, `testing`.
//! Each uses only modules before it.

pub mod adaptive;
mod batcher;
mod deadletter;
mod dispatch;
mod engine;
mod error;
mod flush;
mod item;
mod ledger;
mod outcome;
pub mod pipeline;
mod policy;
mod profile;
mod progress;
mod retry;
mod split;
pub mod testing;

pub use batcher::Batcher;
pub use deadletter::{DeadLetter, DeadLetterSink, JsonlDeadLetters, MemoryDeadLetters};
pub use dispatch::{Concurrency, DispatchConfig, RateLimits, Throttle};
pub use engine::{BatchSizing, Engine, EngineConfig, Intake, Report, Running, Settled};
pub use error::Error;
pub use flush::{FlushPolicy, MemoryLimits};
pub use item::{Batch, Item, Key, Priority};
pub use outcome::{handler_fn, BatchOutcome, BoxFuture, Handler, HandlerFn, ItemOutcome};
pub use profile::StageReport;
pub use progress::Progress;
pub use retry::RetryPolicy;
pub use split::SplitStrategy;
