//! `ferry serve` and `ferry worker`: their flags, parsed and handed to the job service
//! (`ferry_server::Service`, `ferry_server::run_worker`) with a shutdown signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use ferry_server::{run_worker, ServeOptions, Service, WorkerOptions};
use ferry_store::Store;

use crate::handlers::handlers;

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
    /// A configuration file whose `[handler.NAME]` tables add handlers jobs may name: any
    /// job-file handler kind (exec, http, graphql, sql, jsonl) with the job file's keys and
    /// engine settings (docs/service.md, "Handlers from configuration").
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
    /// A configuration file whose `[handler.NAME]` tables add handlers jobs may name: any
    /// job-file handler kind (exec, http, graphql, sql, jsonl) with the job file's keys and
    /// engine settings (docs/service.md, "Handlers from configuration").
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Opens the store `spec` names: an SQLite file or a `postgres://` URL.
pub(crate) async fn open_store(spec: &str) -> anyhow::Result<Arc<dyn Store>> {
    Ok(ferry_store::open(spec, None, ferry_store::StoreOptions::new()).await?)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: stop claiming, finish or release what is in
/// flight.
async fn shutdown_signal() {
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
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let handlers = handlers(args.config.as_deref(), !args.no_worker).await?;
    let options = ServeOptions {
        store: args.store,
        worker: !args.no_worker,
        result_ttl: args.result_ttl,
        tenant_rps: args.tenant_rps,
        handlers,
    };
    Service::open(options)
        .await?
        .serve(args.listen, shutdown_signal())
        .await?;
    Ok(())
}

pub(crate) async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.lease.is_zero(), "--lease must be greater than zero");
    anyhow::ensure!(args.claim_batch > 0, "--claim-batch must be at least 1");
    let mut options = WorkerOptions {
        lease: args.lease,
        claim_batch: args.claim_batch,
        ..WorkerOptions::default()
    };
    if let Some(id) = args.id {
        options.id = id;
    }
    let handlers = handlers(args.config.as_deref(), true).await?;
    run_worker(
        &args.store,
        args.schema.as_deref(),
        handlers,
        options,
        shutdown_signal(),
    )
    .await?;
    Ok(())
}
