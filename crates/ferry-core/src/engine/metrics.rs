//! The engine's metric handles, registered once per run through the `metrics` facade (the
//! binary installs an exporter; without one they cost next to nothing).

/// Pre-registered metric handles, labelled with the engine's name.
pub(super) struct Metrics {
    pub(super) succeeded: metrics::Counter,
    pub(super) dead: metrics::Counter,
    pub(super) cancelled: metrics::Counter,
    pub(super) calls: metrics::Counter,
    pub(super) retries: metrics::Counter,
    pub(super) splits: metrics::Counter,
    pub(super) timeouts: metrics::Counter,
    pub(super) latency: metrics::Histogram,
    pub(super) batch_items: metrics::Histogram,
    pub(super) concurrency: metrics::Gauge,
    pub(super) batch_size: metrics::Gauge,
    pub(super) in_flight: metrics::Gauge,
}

impl Metrics {
    /// Registers the handles for the engine called `name`.
    pub(super) fn new(name: &str) -> Self {
        let engine = name.to_owned();
        Metrics {
            succeeded: metrics::counter!("ferry_items_total", "engine" => engine.clone(), "outcome" => "succeeded"),
            dead: metrics::counter!("ferry_items_total", "engine" => engine.clone(), "outcome" => "dead_lettered"),
            cancelled: metrics::counter!("ferry_items_total", "engine" => engine.clone(), "outcome" => "cancelled"),
            calls: metrics::counter!("ferry_calls_total", "engine" => engine.clone()),
            retries: metrics::counter!("ferry_retries_total", "engine" => engine.clone()),
            splits: metrics::counter!("ferry_splits_total", "engine" => engine.clone()),
            timeouts: metrics::counter!("ferry_timeouts_total", "engine" => engine.clone()),
            latency: metrics::histogram!("ferry_batch_latency_seconds", "engine" => engine.clone()),
            batch_items: metrics::histogram!("ferry_batch_items", "engine" => engine.clone()),
            concurrency: metrics::gauge!("ferry_concurrency_limit", "engine" => engine.clone()),
            batch_size: metrics::gauge!("ferry_batch_size", "engine" => engine.clone()),
            in_flight: metrics::gauge!("ferry_items_in_flight", "engine" => engine),
        }
    }
}
