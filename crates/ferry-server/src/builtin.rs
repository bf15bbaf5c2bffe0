//! The handlers built into the service: [`Handlers::builtin`] (`sentiment`, the VADER model
//! behind a result cache, `echo` and `sleep`), [`Echo`], the no-op handler, and [`Sleep`],
//! the no-op handler that takes its time.

use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, EngineConfig, FlushPolicy, Handler, Priority};
use ferry_models::sentiment::SentimentJsonHandler;
use serde_json::Value;

use crate::cache::{CacheOptions, Cached};
use crate::worker::Handlers;

impl Handlers {
    /// The built-in handlers: `sentiment` (the VADER model, behind a result cache keyed by
    /// the text's hash: 1 hour, 100,000 texts, as KubeSentiment's `cache_ttl_seconds =
    /// 3600`), `echo` (the no-op handler: each item's payload is its result) and `sleep`
    /// (`echo` after 20 ms per batch of at most 32, one batch at a time per process: a
    /// stand-in for a model that serves one batch at a time, see [`Sleep`]). Claims
    /// already arrive in batches, so the engine waits at most 2 ms (high jobs' items 1 ms)
    /// for a batch to fill: a small job is not held back (with 10 ms, one client's 100-text
    /// jobs took 19.5 ms submit-to-done instead of 7.5 ms; under load batches fill first and
    /// the wait does not matter). Low jobs' items also wait 2 ms: the claim already batched
    /// them and rationed them to 1/7, so a longer wait would only add latency; they board
    /// after medium and high items. Loads the model's lexicon before it returns.
    pub fn builtin() -> Handlers {
        Self::builtin_with(CacheOptions::default())
    }

    /// [`builtin`](Self::builtin) with the sentiment cache's TTL and size set by `cache`.
    pub fn builtin_with(cache: CacheOptions) -> Handlers {
        ferry_models::sentiment::preload();
        let config = Handlers::engine_config();
        Handlers::new()
            .register(
                "sentiment",
                Cached::new(
                    "sentiment",
                    SentimentJsonHandler::new(),
                    cache.ttl,
                    cache.capacity,
                ),
                config.clone(),
            )
            .register("echo", Echo, config.clone())
            .register(
                "sleep",
                Sleep::new(Duration::from_millis(20)),
                Sleep::engine_config(config),
            )
    }

    /// The engine settings the service runs a handler with unless told otherwise (the
    /// built-in handlers, and `[handler.NAME]` tables without engine keys): the standard
    /// engine, waiting at most 2 ms for a batch to fill (high jobs' items 1 ms), as
    /// [`builtin`](Self::builtin) explains.
    pub fn engine_config() -> EngineConfig {
        let mut config = EngineConfig::standard();
        config.flush = FlushPolicy::new()
            .max_wait(Priority::High, Duration::from_millis(1))
            .max_wait(Priority::Medium, Duration::from_millis(2))
            .max_wait(Priority::Low, Duration::from_millis(2));
        config
    }
}

/// The no-op handler `echo`: every item succeeds at once with its own payload as the result.
/// It measures what the service itself costs (store, claims, engine, results) and serves
/// tests that need to see which payload produced which result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Handler<Value, Value> for Echo {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let results: Vec<Value> = batch.payloads().cloned().collect();
        Box::pin(async move { BatchOutcome::ok(results) })
    }
}

/// The handler `sleep`: [`Echo`] after holding the process's one model slot for its
/// duration per batch (20 ms in [`Handlers::builtin`], whose batches hold at most
/// [`Sleep::BATCH`] items). It stands for a model that serves one batch at a time per
/// process (a GPU or a CPU-bound model with a fixed batch size): batches of one process
/// wait for the slot in turn, so one process does at most one batch per 20 ms, however
/// many calls the engine makes at once, and throughput grows with the number of worker
/// processes, as long as claims and results cost them little. Clones share the slot.
#[derive(Debug, Clone)]
pub struct Sleep {
    per_batch: Duration,
    slot: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Sleep {
    /// The model's batch size: the built-in `sleep` handler's batches hold at most this many
    /// items, filled before they are sent (fixed sizing, as a model's batch size is).
    pub const BATCH: usize = 32;

    /// A handler that holds its one slot for `per_batch` on each batch.
    pub fn new(per_batch: Duration) -> Self {
        Sleep {
            per_batch,
            slot: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// `config` with batches of [`BATCH`](Self::BATCH) items, fixed: how the built-in
    /// `sleep` handler runs (one process: at most 32 items per 20 ms, 1,600 items/s).
    pub fn engine_config(mut config: EngineConfig) -> EngineConfig {
        let batch = std::num::NonZeroUsize::new(Self::BATCH).unwrap_or(std::num::NonZeroUsize::MIN);
        config.flush = config.flush.max_items(batch);
        config.sizing = ferry_core::BatchSizing::Fixed;
        config
    }
}

impl Handler<Value, Value> for Sleep {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let results: Vec<Value> = batch.payloads().cloned().collect();
        Box::pin(async move {
            // The semaphore is never closed; were it, the batch would simply not wait.
            let _slot = self.slot.acquire().await;
            tokio::time::sleep(self.per_batch).await;
            BatchOutcome::ok(results)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Item;

    #[test]
    fn the_builtin_handlers_are_sentiment_echo_and_sleep() {
        let names: Vec<String> = Handlers::builtin().names().into_iter().collect();
        assert_eq!(names, ["echo", "sentiment", "sleep"]);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_echoes_after_its_time() {
        let batch = Batch::new(vec![Item::new("a", 0, Value::from(1))]);
        let started = tokio::time::Instant::now();
        let outcome = Sleep::new(Duration::from_millis(20)).call(&batch).await;
        assert_eq!(started.elapsed(), Duration::from_millis(20));
        assert!(matches!(outcome, BatchOutcome::Done(ref items) if items.len() == 1));
    }

    #[test]
    fn sleep_runs_fixed_batches_of_its_model_size() {
        let config = Sleep::engine_config(Handlers::engine_config());
        assert_eq!(config.flush.items_cap(), 32);
        assert!(matches!(config.sizing, ferry_core::BatchSizing::Fixed));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_serves_one_batch_at_a_time() {
        let batch = Batch::new(vec![Item::new("a", 0, Value::from(1))]);
        let sleep = Sleep::new(Duration::from_millis(20));
        let started = tokio::time::Instant::now();
        let (a, b) = tokio::join!(sleep.call(&batch), sleep.call(&batch));
        assert_eq!(started.elapsed(), Duration::from_millis(40));
        assert!(matches!(a, BatchOutcome::Done(_)) && matches!(b, BatchOutcome::Done(_)));
    }

    #[test]
    fn merged_and_declared_names_are_known() {
        let extra = Handlers::new()
            .register("echo", Echo, Handlers::engine_config())
            .register("enrich", Echo, Handlers::engine_config())
            .declare("remote");
        let merged = Handlers::builtin().merge(extra);
        let names: Vec<String> = merged.names().into_iter().collect();
        assert_eq!(names, ["echo", "enrich", "remote", "sentiment", "sleep"]);
        assert!(merged.contains("enrich") && !merged.contains("remote"));
    }

    #[tokio::test]
    async fn echo_returns_each_payload() {
        let batch = Batch::new(vec![
            Item::new("a", 0, Value::from(1)),
            Item::new("b", 1, Value::from("x")),
        ]);
        match Echo.call(&batch).await {
            BatchOutcome::Done(items) => {
                let got: Vec<Value> = items
                    .into_iter()
                    .map(|o| match o {
                        ferry_core::ItemOutcome::Ok(v) => v,
                        other => panic!("expected Ok, got {other:?}"),
                    })
                    .collect();
                assert_eq!(got, vec![Value::from(1), Value::from("x")]);
            }
            other => panic!("expected Done, got {other:?}"),
        }
    }
}
