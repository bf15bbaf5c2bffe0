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

use crate::api::{app, AppState, TenantRate};
use crate::error::Error;
use crate::sweeper::sweep_results;
use crate::worker::{Handlers, Worker, WorkerOptions, WorkerReport};

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
    /// The handlers jobs may name, and the in-process worker runs (default
    /// [`Handlers::builtin`]).
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
        let store = ferry_store::open(&options.store, None, StoreOptions::new()).await?;
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
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(Error::Metrics)?;
        let handlers = self.options.handlers.clone();
        let names = handlers.names();
        let worker = self
            .options
            .worker
            .then(|| spawn_worker(&self.store, handlers, &stop));
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
    let opened = ferry_store::open(store, schema, StoreOptions::new()).await?;
    let stop = CancellationToken::new();
    let on_shutdown = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        on_shutdown.cancel();
    });
    eprintln!("ferry worker {}: claiming from {store}", options.id);
    let report = Worker::new(opened, handlers, options).run(stop).await?;
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
