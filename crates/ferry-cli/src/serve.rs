//! `ferry serve` and `ferry worker`: the job service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use ferry_core::{EngineConfig, FlushPolicy, Priority};
use ferry_models::sentiment::SentimentJsonHandler;
use ferry_server::api::TenantRate;
use ferry_server::{app, sweep_results, AppState, Cached, Echo, Handlers, Worker, WorkerOptions};
use ferry_store::Store;
use tokio_util::sync::CancellationToken;

/// Options of `ferry serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Without API keys in the store (`ferry keys create`) only
    /// loopback addresses are accepted; with keys every route but /healthz and /readyz
    /// needs one (a key created while the service runs takes effect within 2 seconds).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The store: an SQLite file (created if missing) or a postgres:// URL.
    #[arg(long, default_value = "ferry.db")]
    store: String,
    /// Run no in-process worker (use `ferry worker` processes instead).
    #[arg(long)]
    no_worker: bool,
    /// How long finished jobs and their results are kept; a sweeper deletes older ones.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    result_ttl: Duration,
    /// Requests per second each tenant (API key's tenant) may make; more get 429 with
    /// Retry-After. Unlimited when not given.
    #[arg(long)]
    tenant_rps: Option<std::num::NonZeroU32>,
}

/// Options of `ferry worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The store: an SQLite file or a postgres:// URL shared by several workers.
    #[arg(long)]
    store: String,
    /// This worker's identity in leases (default: `worker-<pid>`).
    #[arg(long)]
    id: Option<String>,
    /// PostgreSQL only: keep everything in this schema (created if missing), as
    /// `PgStore::connect_with_schema`; wake-ups then travel on `ferry_work_<schema>`.
    #[arg(long)]
    schema: Option<String>,
    /// Lease length: a killed worker's items are rescued by another worker at most about
    /// 1⅓ leases after its last renewal (renewals and rescues run every third of a lease).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// Most items per claim.
    #[arg(long, default_value_t = 512)]
    claim_batch: usize,
}

pub(crate) async fn open_store(spec: &str) -> anyhow::Result<Arc<dyn Store>> {
    open_store_in(spec, None).await
}

/// [`open_store`], on PostgreSQL in `schema` when one is given.
pub(crate) async fn open_store_in(
    spec: &str,
    schema: Option<&str>,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(ferry_store::open(spec, schema, ferry_store::StoreOptions::new()).await?)
}

/// The built-in handlers: `sentiment` (the VADER model, behind a result cache keyed by the
/// text's hash: 1 hour, 100,000 texts, as seed 001's `cache_ttl_seconds = 3600`) and `echo`
/// (the no-op handler: each item's payload is its result). Claims already arrive in batches,
/// so the engine waits at most 2 ms (high 1 ms, urgent 0.5 ms) for a batch to fill: a small
/// job is not held back (with 10 ms, one client's 100-text jobs took 19.5 ms submit-to-done
/// instead of 7.5 ms; under load batches fill first and the wait does not matter).
pub(crate) fn handlers() -> Handlers {
    ferry_models::sentiment::preload();
    let mut config = EngineConfig::standard();
    config.flush = FlushPolicy::new()
        .max_wait(Priority::Normal, Duration::from_millis(2))
        .max_wait(Priority::High, Duration::from_millis(1))
        .max_wait(Priority::Urgent, Duration::from_micros(500));
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

/// Cancels `token` on Ctrl-C (SIGINT) or SIGTERM: stop claiming, finish or release what is
/// in flight.
fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: no new claims; finishing or releasing what is in flight");
        token.cancel();
    });
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    let live_keys = store
        .list_keys(None)
        .await
        .context("reading the API keys")?
        .iter()
        .filter(|k| k.revoked_at.is_none())
        .count();
    anyhow::ensure!(
        live_keys > 0 || args.listen.ip().is_loopback(),
        "refusing to listen on {}: without API keys the service binds to loopback only \
         (create one with `ferry keys create --store {} TENANT`)",
        args.listen,
        args.store
    );
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    tokio::spawn(sweep_results(
        Arc::clone(&store),
        args.result_ttl,
        shutdown.clone(),
    ));
    // Installed before any engine starts, so their metric handles register with it.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    let handlers = handlers();
    let names = handlers.names();
    let worker = (!args.no_worker).then(|| {
        let worker = Worker::new(Arc::clone(&store), handlers, WorkerOptions::default());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let result = worker.run(stop.clone()).await;
            if let Err(e) = &result {
                // A service whose worker died would accept jobs and never run them.
                tracing::error!(error = %e, "the in-process worker stopped; shutting down");
                stop.cancel();
            }
            result
        })
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    if live_keys > 0 {
        eprintln!(
            "ferry serve: listening on http://{} (store {}); {live_keys} API key(s): every \
             route but /healthz and /readyz needs one",
            listener.local_addr()?,
            args.store
        );
    } else {
        eprintln!(
            "ferry serve: listening on http://{} (store {}); no API keys configured, so \
             loopback only and open to every local user",
            listener.local_addr()?,
            args.store
        );
    }
    let mut state = AppState::new(store);
    state.auth_required = live_keys > 0;
    state.tenant_rate = args.tenant_rps.map(TenantRate::new);
    state.handlers = Arc::new(names);
    state.shutdown = shutdown.clone();
    state.metrics = Some(metrics);
    let stop = shutdown.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    if let Some(w) = worker {
        let report = w.await?.context("the in-process worker failed")?;
        eprintln!(
            "worker: {} claimed, {} completed, {} released at shutdown",
            report.claimed, report.completed, report.released
        );
    }
    Ok(())
}

pub(crate) async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let store = open_store_in(&args.store, args.schema.as_deref()).await?;
    let shutdown = CancellationToken::new();
    on_signal(shutdown.clone());
    let mut options = WorkerOptions::default();
    if let Some(id) = args.id {
        options.id = id;
    }
    anyhow::ensure!(!args.lease.is_zero(), "--lease must be greater than zero");
    anyhow::ensure!(args.claim_batch > 0, "--claim-batch must be at least 1");
    options.lease = args.lease;
    options.claim_batch = args.claim_batch;
    eprintln!("ferry worker {}: claiming from {}", options.id, args.store);
    let report = Worker::new(store, handlers(), options)
        .run(shutdown)
        .await?;
    eprintln!(
        "worker: {} claimed, {} completed, {} released at shutdown",
        report.claimed, report.completed, report.released
    );
    Ok(())
}
