//! The job service assembled: [`Service`] is what `ferry serve` runs, [`run_worker`] what
//! `ferry worker` runs. The binary parses its flags into [`ServeOptions`] or
//! [`WorkerOptions`], passes a shutdown future (its signal handler) and makes one call.
//!
//! `Service` owns the order things start in:
//!
//! 1. the store is opened (migrations run) and its live API keys counted: without one, only
//!    a loopback address is accepted ([`Error::NotLoopback`]) and every request acts for the
//!    open tenant until a key is created;
//! 2. the result sweeper starts ([`sweep_results`]), then the Prometheus recorder is
//!    installed, before any engine, so the engines' metric handles register with it;
//! 3. the handlers ([`ServeOptions::handlers`]: the built-in ones unless the caller adds
//!    configured ones) are loaded and, unless
//!    [`ServeOptions::worker`] is off, an in-process worker starts; if it fails, the whole
//!    service shuts down (a service whose worker died would accept jobs and never run them);
//! 4. the API ([`app`]) is served until the shutdown future resolves, then the worker
//!    finishes or releases what it holds.
//!
//! The service tells its operator on stderr where it listens (the first line; scripts and
//! tests read the address from it) and, at the end, what its worker did.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ferry_store::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{app, AppState, TenantQuotas, TenantRate};
use crate::batch_metrics;
use crate::error::Error;
use crate::sweeper::{expire_jobs, sweep_results};
use crate::worker::{Handlers, Worker, WorkerOptions, WorkerReport};
use crate::worker_http::worker_routes;

/// The KubeSentiment-compatible batch API's settings (its `ASYNC_BATCH_*` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchApiOptions {
    /// Whether `/api/v1/batch/...` is served (default `true`).
    pub enabled: bool,
    /// Most texts in one job (default 1,000).
    pub max_texts: usize,
    /// `timeout_seconds` of jobs that give none (default `None`: no deadline).
    pub default_timeout_seconds: Option<f64>,
    /// Most unfinished jobs over every priority at submission (default `None`).
    pub max_jobs: Option<u64>,
}

impl Default for BatchApiOptions {
    fn default() -> Self {
        BatchApiOptions {
            enabled: true,
            max_texts: 1000,
            default_timeout_seconds: None,
            max_jobs: None,
        }
    }
}

/// What `ferry serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The store: an SQLite file (created if missing) or a `postgres://` URL.
    pub store: String,
    /// Whether a worker runs in the process (default `true`; off, `ferry worker` processes
    /// do the work).
    pub worker: bool,
    /// How long finished jobs and their results are kept (default 24 h).
    pub result_ttl: Duration,
    /// Requests per second each tenant may make (default `None`: unlimited).
    pub tenant_rps: Option<NonZeroU32>,
    /// Per-tenant quotas on queued and in-flight items (default: none); applied over
    /// [`ServeOptions::store_options`].
    pub quotas: TenantQuotas,
    /// The store's settings: queue limits per priority (default 100 / 500 / 1,000).
    pub store_options: StoreOptions,
    /// The batch API's settings.
    pub batch: BatchApiOptions,
    /// The handlers jobs may name, and the in-process worker runs (default
    /// [`Handlers::builtin`]; [`Handlers::builtin_with`] sets the sentiment cache).
    pub handlers: Handlers,
}

impl ServeOptions {
    /// The defaults over the store `store`.
    pub fn new(store: impl Into<String>) -> Self {
        ServeOptions {
            store: store.into(),
            worker: true,
            result_ttl: Duration::from_secs(24 * 3600),
            tenant_rps: None,
            quotas: TenantQuotas::default(),
            store_options: StoreOptions::new(),
            batch: BatchApiOptions::default(),
            handlers: Handlers::builtin(),
        }
    }
}

/// The job service over an open store (see the module docs).
#[derive(Debug)]
pub struct Service {
    store: Arc<dyn Store>,
    options: ServeOptions,
    live_keys: usize,
}

impl Service {
    /// Opens [`ServeOptions::store`] and reads its API keys.
    pub async fn open(options: ServeOptions) -> Result<Self, Error> {
        let store_options = options.quotas.apply(options.store_options.clone());
        let store = ferry_store::open(&options.store, None, store_options).await?;
        Self::with_store(store, options).await
    }

    /// The service over `store`, already open ([`ServeOptions::store`] only names it in
    /// messages); reads its API keys.
    pub async fn with_store(store: Arc<dyn Store>, options: ServeOptions) -> Result<Self, Error> {
        let live_keys = store
            .list_keys(None)
            .await
            .map_err(Error::Keys)?
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .count();
        Ok(Service {
            store,
            options,
            live_keys,
        })
    }

    /// Binds `listen` and [`run`](Self::run)s there; a non-loopback address without API
    /// keys is refused before binding.
    pub async fn serve(
        self,
        listen: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        self.check_address(listen)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Bind {
                addr: listen,
                source,
            })?;
        self.run(listener, shutdown).await
    }

    /// Runs the service on `listener` until `shutdown` resolves (or the in-process worker
    /// fails), then waits for the worker to finish or release what it holds.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let addr = listener.local_addr()?;
        self.check_address(addr)?;
        let stop = CancellationToken::new();
        let on_shutdown = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            on_shutdown.cancel();
        });
        tokio::spawn(sweep_results(
            Arc::clone(&self.store),
            self.options.result_ttl,
            stop.clone(),
        ));
        tokio::spawn(expire_jobs(
            Arc::clone(&self.store),
            Duration::from_millis(250),
            stop.clone(),
        ));
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(Error::Metrics)?;
        batch_metrics::describe();
        let handlers = self.options.handlers.clone();
        let names = handlers.names();
        let worker = self
            .options
            .worker
            .then(|| spawn_worker(&self.store, handlers, &stop));
        tracing::info!(%addr, store = %self.options.store, keys = self.live_keys, "listening");
        if self.live_keys > 0 {
            eprintln!(
                "ferry serve: listening on http://{addr} (store {}); {} API key(s): every \
                 route but /healthz and /readyz needs one",
                self.options.store, self.live_keys
            );
        } else {
            eprintln!(
                "ferry serve: listening on http://{addr} (store {}); no API keys configured, \
                 so loopback only and open to every local user",
                self.options.store
            );
        }
        let mut state = AppState::new(self.store);
        state.auth_required = self.live_keys > 0;
        state.tenant_rate = self.options.tenant_rps.map(TenantRate::new);
        state.handlers = Arc::new(names);
        state.shutdown = stop.clone();
        state.metrics = Some(metrics);
        let batch = &self.options.batch;
        state.batch_api = batch.enabled;
        state.max_texts = batch.max_texts;
        state.default_timeout_seconds = batch.default_timeout_seconds;
        state.max_jobs = batch.max_jobs;
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await?;
        if let Some(worker) = worker {
            let report = worker.await?.map_err(|e| Error::Worker(Box::new(e)))?;
            print_report(&report);
        }
        Ok(())
    }

    /// Refuses a non-loopback `addr` while the store holds no live API key.
    fn check_address(&self, addr: SocketAddr) -> Result<(), Error> {
        if self.live_keys > 0 || addr.ip().is_loopback() {
            return Ok(());
        }
        Err(Error::NotLoopback {
            addr,
            store: self.options.store.clone(),
        })
    }
}

/// Starts the in-process worker; if it fails, it cancels `stop`, shutting the service down.
fn spawn_worker(
    store: &Arc<dyn Store>,
    handlers: Handlers,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<Result<WorkerReport, Error>> {
    let worker = Worker::new(Arc::clone(store), handlers, WorkerOptions::default());
    let stop = stop.clone();
    tokio::spawn(async move {
        let result = worker.run(stop.clone()).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the in-process worker stopped; shutting down");
            stop.cancel();
        }
        result
    })
}

fn print_report(report: &WorkerReport) {
    eprintln!(
        "worker: {} claimed, {} completed, {} released at shutdown",
        report.claimed, report.completed, report.released
    );
}

/// What `ferry worker` runs with ([`run_worker_with`]).
#[derive(Debug, Clone)]
pub struct WorkerRun {
    /// The store: an SQLite file or a `postgres://` URL.
    pub store: String,
    /// PostgreSQL only: the schema to keep everything in (default `public`).
    pub schema: Option<String>,
    /// The worker's own settings.
    pub worker: WorkerOptions,
    /// The handlers it runs (default [`Handlers::builtin`]).
    pub handlers: Handlers,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (default none; see
    /// [`worker_routes`]).
    pub metrics_addr: Option<SocketAddr>,
}

impl WorkerRun {
    /// The defaults over the store `store`.
    pub fn new(store: impl Into<String>) -> Self {
        WorkerRun {
            store: store.into(),
            schema: None,
            worker: WorkerOptions::default(),
            handlers: Handlers::builtin(),
            metrics_addr: None,
        }
    }
}

/// What `ferry worker` runs: a worker with `handlers` (the built-in ones, [`Handlers::builtin`],
/// and any configured) over the store `store` (on PostgreSQL in `schema` when given), until
/// `shutdown` resolves; then it finishes or releases what it holds and reports.
pub async fn run_worker(
    store: &str,
    schema: Option<&str>,
    handlers: Handlers,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<WorkerReport, Error> {
    let mut run = WorkerRun::new(store);
    run.schema = schema.map(str::to_owned);
    run.worker = options;
    run.handlers = handlers;
    run_worker_with(run, shutdown).await
}

/// [`run_worker`] with every setting: `/metrics` and `/healthz` on
/// [`WorkerRun::metrics_addr`] when given (bound before the worker starts claiming).
pub async fn run_worker_with(
    run: WorkerRun,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<WorkerReport, Error> {
    let quotas = TenantQuotas {
        max_in_flight: run.worker.tenant_max_in_flight,
        ..TenantQuotas::default()
    };
    let store_options = quotas.apply(StoreOptions::new());
    let opened = ferry_store::open(&run.store, run.schema.as_deref(), store_options).await?;
    let stop = CancellationToken::new();
    let on_shutdown = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        on_shutdown.cancel();
    });
    if let Some(addr) = run.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr()?;
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(Error::Metrics)?;
        batch_metrics::describe();
        let routes = worker_routes(Arc::clone(&opened), metrics);
        let until = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, routes)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the worker's metrics port failed");
            }
        });
        eprintln!(
            "ferry worker {}: /metrics and /healthz on http://{local}",
            run.worker.id
        );
    }
    eprintln!(
        "ferry worker {}: claiming from {}",
        run.worker.id, run.store
    );
    tracing::info!(worker = %run.worker.id, store = %run.store, "claiming");
    let report = Worker::new(opened, run.handlers, run.worker)
        .run(stop)
        .await?;
    print_report(&report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_path(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("ferry-service-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.db").to_string_lossy().into_owned()
    }

    #[tokio::test]
    async fn without_keys_only_loopback_is_accepted() {
        let service = Service::open(ServeOptions::new(store_path("loopback")))
            .await
            .unwrap();
        let err = service
            .serve("0.0.0.0:0".parse().unwrap(), std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotLoopback { .. }), "{err}");
        assert!(err.to_string().contains("loopback only"), "{err}");
    }
}
