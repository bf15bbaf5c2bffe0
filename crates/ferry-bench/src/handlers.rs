//! The handlers the benchmarked service runs: `ferry serve`'s built-in set, assembled the
//! same way so the figures are the shipped service's.

use std::time::Duration;

use ferry_core::{EngineConfig, FlushPolicy, Priority};
use ferry_models::sentiment::SentimentJsonHandler;
use ferry_server::{Cached, Echo, Handlers};

/// `sentiment` (the VADER model behind a result cache: 1 hour, 100,000 texts) and `echo`
/// (the no-op handler), with the flush waits `ferry serve` uses (2 ms, high 1 ms, urgent
/// 0.5 ms): claims already arrive in batches, so a small job is not held back.
pub(crate) fn handlers() -> Handlers {
    ferry_models::sentiment::preload();
    let mut config = EngineConfig::standard();
    config.flush = FlushPolicy::new()
        .max_wait(Priority::Normal, Duration::from_millis(2))
        .max_wait(Priority::High, Duration::from_millis(1))
        .max_wait(Priority::Urgent, Duration::from_micros(500));
    let sentiment = Cached::new(
        "sentiment",
        SentimentJsonHandler::new(),
        Duration::from_secs(3600),
        100_000,
    );
    Handlers::new()
        .register("sentiment", sentiment, config.clone())
        .register("echo", Echo, config)
}
