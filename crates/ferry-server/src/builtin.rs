//! The handlers built into the service: [`Handlers::builtin`] (`sentiment`, the VADER model
//! behind a result cache, and `echo`) and [`Echo`], the no-op handler.

use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, EngineConfig, FlushPolicy, Handler, Priority};
use ferry_models::sentiment::SentimentJsonHandler;
use serde_json::Value;

use crate::cache::Cached;
use crate::worker::Handlers;

impl Handlers {
    /// The built-in handlers: `sentiment` (the VADER model, behind a result cache keyed by
    /// the text's hash: 1 hour, 100,000 texts, as KubeSentiment's `cache_ttl_seconds =
    /// 3600`) and `echo` (the no-op handler: each item's payload is its result). Claims
    /// already arrive in batches, so the engine waits at most 2 ms (high jobs' items 1 ms)
    /// for a batch to fill: a small job is not held back (with 10 ms, one client's 100-text
    /// jobs took 19.5 ms submit-to-done instead of 7.5 ms; under load batches fill first and
    /// the wait does not matter). Low jobs' items also wait 2 ms: the claim already batched
    /// them and rationed them to 1/7, so a longer wait would only add latency; they board
    /// after medium and high items. Loads the model's lexicon before it returns.
    pub fn builtin() -> Handlers {
        ferry_models::sentiment::preload();
        let config = Handlers::engine_config();
        Handlers::new()
            .register(
                "sentiment",
                Cached::new(
                    "sentiment",
                    SentimentJsonHandler::new(),
                    Duration::from_secs(3600),
                    100_000,
                ),
                config.clone(),
            )
            .register("echo", Echo, config)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Item;

    #[test]
    fn the_builtin_handlers_are_sentiment_and_echo() {
        let names: Vec<String> = Handlers::builtin().names().into_iter().collect();
        assert_eq!(names, ["echo", "sentiment"]);
    }

    #[test]
    fn merged_and_declared_names_are_known() {
        let extra = Handlers::new()
            .register("echo", Echo, Handlers::engine_config())
            .register("enrich", Echo, Handlers::engine_config())
            .declare("remote");
        let merged = Handlers::builtin().merge(extra);
        let names: Vec<String> = merged.names().into_iter().collect();
        assert_eq!(names, ["echo", "enrich", "remote", "sentiment"]);
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
