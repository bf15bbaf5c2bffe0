//! [`AppState`]: what every handler of the API shares, passed with `with_state`.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use super::clock::ApiClock;
use super::eta::RateCache;
use super::key_watch::KeyWatch;
use super::limits::TenantRate;

/// What every handler of the API shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The durable store.
    pub store: Arc<dyn Store>,
    /// The handler the batch API's `predict` route submits to (default `sentiment`).
    pub predict_handler: String,
    /// Most texts in one batch job (default 1,000, as KubeSentiment's `max_batch_size`
    /// setting).
    pub max_texts: usize,
    /// Whether the batch API's `/api/v1/batch/...` routes are served (default `true`;
    /// KubeSentiment's `ASYNC_BATCH_ENABLED`).
    pub batch_api: bool,
    /// `timeout_seconds` of batch jobs that give none (default `None`: no deadline;
    /// KubeSentiment's `default_timeout_seconds`).
    pub default_timeout_seconds: Option<f64>,
    /// Most unfinished jobs over every priority a batch-API submission may find; more is
    /// 429 (default `None`: only the per-priority queue limits; KubeSentiment's `max_jobs`).
    pub max_jobs: Option<u64>,
    /// The service's measured rate, for `estimated_completion_seconds`.
    pub(crate) rate: RateCache,
    /// Longest text in characters (default 10,000).
    pub max_text_chars: usize,
    /// The Prometheus recorder's handle, rendered at `/metrics` (none: `/metrics` is 404).
    pub metrics: Option<PrometheusHandle>,
    /// Whether every route but health needs an API key (the request's `Tenant` is then the
    /// key's); the service sets it when the store holds a live key at start. Without it,
    /// keys become required as soon as one is created (checked every
    /// [`RECHECK`](super::key_watch::RECHECK)).
    pub auth_required: bool,
    /// Watches the store for a first key while `auth_required` is false.
    pub(crate) key_watch: KeyWatch,
    /// Where the API reads the time (the key re-check; default the system's clock). Rate
    /// limits carry their own: [`TenantRate::with_clock`].
    pub clock: ApiClock,
    /// Largest request body in bytes (default 16 MiB): larger is 413.
    pub max_body_bytes: usize,
    /// Most items in one `/v1` job (default 100,000).
    pub max_items: usize,
    /// Handler names jobs may name (the workers' handlers); another is 422 at submit.
    pub handlers: Arc<BTreeSet<String>>,
    /// Requests per second each tenant may make (none: unlimited); see [`TenantRate`].
    pub tenant_rate: Option<TenantRate>,
    /// Cancelled when the server shuts down: open event streams and WebSockets end then
    /// (with an `error` event / close code 1001), so a graceful shutdown does not wait for
    /// the jobs they follow.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// State over `store` with the defaults.
    pub fn new(store: Arc<dyn Store>) -> Self {
        AppState {
            store,
            predict_handler: "sentiment".into(),
            max_texts: 1000,
            batch_api: true,
            default_timeout_seconds: None,
            max_jobs: None,
            rate: RateCache::default(),
            max_text_chars: 10_000,
            metrics: None,
            auth_required: false,
            key_watch: KeyWatch::default(),
            clock: ApiClock::system(),
            max_body_bytes: 16 * 1024 * 1024,
            max_items: 100_000,
            handlers: Arc::new(["sentiment".to_owned()].into_iter().collect()),
            tenant_rate: None,
            shutdown: CancellationToken::new(),
        }
    }
}
