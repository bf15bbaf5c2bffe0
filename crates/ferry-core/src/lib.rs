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
//! use ferry_core::{handler_fn, BatchOutcome, Engine, EngineConfig, Item, IterStream};
//!
//! // A handler sends one batch and classifies what came back.
//! let handler = handler_fn(|batch: &ferry_core::Batch<String>| {
//!     let lens: Vec<usize> = batch.payloads().map(String::len).collect();
//!     Box::pin(async move { BatchOutcome::ok(lens) })
//! });
//! let items = (0..100u64).map(|i| Item::new(i, i, format!("record {i}")));
//! let report = Engine::new(EngineConfig::standard(), handler)?
//!     .run(IterStream::new(items))
//!     .await?;
//! assert_eq!(report.progress.succeeded, 100);
//! # Ok(()) }
//! ```

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
pub mod sim;
mod split;

pub use batcher::{Batcher, Buffer, ItemLike, IterStream};
pub use deadletter::{DeadLetter, DeadLetterSink, JsonlDeadLetters, MemoryDeadLetters};
pub use dispatch::{Concurrency, DispatchConfig, RateLimits, Throttle};
pub use engine::{BatchSizing, Engine, EngineConfig, Intake, Report, Running, Settled};
pub use error::Error;
pub use flush::{FlushPolicy, FlushReason, MemoryLimits};
pub use item::{Batch, Item, Key, Priority};
pub use ledger::Ledger;
pub use outcome::{handler_fn, BatchOutcome, BoxFuture, Handler, HandlerFn, ItemOutcome};
pub use profile::{StageProfile, StageReport};
pub use progress::Progress;
pub use retry::RetryPolicy;
pub use split::SplitStrategy;
