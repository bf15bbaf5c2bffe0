//! `ferry serve` and `ferry worker`: their settings, resolved from flags, `FERRY_*`
//! environment variables, the KubeSentiment `ASYNC_BATCH_*` variables and the settings file
//! (in that order of precedence, see [`crate::config`]), and handed to the job service
//! (`ferry_server::Service`, `ferry_server::run_worker_with`) with a shutdown signal.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::Args;

use ferry_server::api::TenantQuotas;
use ferry_server::{
    run_worker_with, BatchApiOptions, CacheOptions, ServeOptions, Service, WorkerOptions, WorkerRun,
};
use ferry_store::{Priority, Store, StoreOptions};

use crate::config::{self, file_duration, LogFormat};
use crate::handlers::handlers;

/// Options of `ferry serve`. Each flag may also come from the environment variable shown
/// and from the `[serve]` table of `--config` (key: the flag's name with underscores);
/// precedence: flag, environment, file, default.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Settings file (TOML): its `[serve]` table gives any setting not set by a flag or the
    /// environment; its `[handler.NAME]` tables add handlers jobs may name: any job-file
    /// handler kind (exec, http, graphql, sql, jsonl) with the job file's keys and engine
    /// settings (docs/service.md, "Handlers from configuration").
    #[arg(long, env = "FERRY_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8000]. Without API keys in the store
    /// (`ferry keys create`) only loopback addresses are accepted; with keys every route
    /// but /healthz and /readyz needs one (a key created while the service runs takes
    /// effect within 2 seconds).
    #[arg(long, env = "FERRY_LISTEN")]
    listen: Option<SocketAddr>,
    /// The store: an SQLite file (created if missing) or a postgres:// URL [default:
    /// ferry.db].
    #[arg(long, env = "FERRY_STORE")]
    store: Option<String>,
    /// Run no in-process worker (use `ferry worker` processes instead).
    #[arg(long, env = "FERRY_NO_WORKER", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    no_worker: Option<bool>,
    /// How long finished jobs and their results are kept; a sweeper deletes older ones
    /// [default: 24h].
    #[arg(long, env = "FERRY_RESULT_TTL", value_parser = humantime::parse_duration)]
    result_ttl: Option<Duration>,
    /// Requests per second each tenant (API key's tenant) may make; more get 429 with
    /// Retry-After. Unlimited when not given.
    #[arg(long, env = "FERRY_TENANT_RPS")]
    tenant_rps: Option<NonZeroU32>,
    /// Most queued (not yet claimed) items each tenant may have; a submission past it gets
    /// 429 with Retry-After (a job larger than it, 422). Unlimited when not given.
    #[arg(long, env = "FERRY_TENANT_MAX_QUEUED", value_name = "ITEMS")]
    tenant_max_queued: Option<NonZeroU64>,
    /// Most items of each tenant in flight at once; claims serve other tenants meanwhile.
    /// Give `ferry worker` processes the same. Unlimited when not given.
    #[arg(long, env = "FERRY_TENANT_MAX_IN_FLIGHT", value_name = "ITEMS")]
    tenant_max_in_flight: Option<NonZeroU64>,
    /// Log lines as `text` or `json` (one object per line) [default: text].
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Serve no KubeSentiment-compatible batch API (`/api/v1/batch/...` answers 404); also
    /// `ASYNC_BATCH_ENABLED=false`.
    #[arg(long, env = "FERRY_NO_BATCH_API", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    no_batch_api: Option<bool>,
    /// Most texts in one batch-API job [default: 1000]; also `ASYNC_BATCH_MAX_BATCH_SIZE`.
    #[arg(long, env = "FERRY_MAX_TEXTS")]
    max_texts: Option<usize>,
    /// Seconds a batch-API job may take when it gives no `timeout_seconds` [default: none];
    /// also `ASYNC_BATCH_DEFAULT_TIMEOUT_SECONDS`.
    #[arg(long, env = "FERRY_DEFAULT_TIMEOUT_SECONDS")]
    default_timeout_seconds: Option<f64>,
    /// Most unfinished jobs (all priorities) a batch-API submission may find; more is 429
    /// [default: none]; also `ASYNC_BATCH_MAX_JOBS`.
    #[arg(long, env = "FERRY_MAX_JOBS")]
    max_jobs: Option<u64>,
    /// Most unfinished high-priority jobs [default: 100]; also
    /// `ASYNC_BATCH_PRIORITY_HIGH_LIMIT`.
    #[arg(long, env = "FERRY_QUEUE_LIMIT_HIGH")]
    queue_limit_high: Option<NonZeroUsize>,
    /// Most unfinished medium-priority jobs [default: 500]; also
    /// `ASYNC_BATCH_PRIORITY_MEDIUM_LIMIT`.
    #[arg(long, env = "FERRY_QUEUE_LIMIT_MEDIUM")]
    queue_limit_medium: Option<NonZeroUsize>,
    /// Most unfinished low-priority jobs [default: 1000]; also
    /// `ASYNC_BATCH_PRIORITY_LOW_LIMIT`.
    #[arg(long, env = "FERRY_QUEUE_LIMIT_LOW")]
    queue_limit_low: Option<NonZeroUsize>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// The `sentiment` handler's result cache (both commands).
#[derive(Debug, Args)]
struct CacheArgs {
    /// How long a sentiment result is served from the cache [default: 1h]; also
    /// `ASYNC_BATCH_CACHE_TTL_SECONDS` (seconds).
    #[arg(long, env = "FERRY_CACHE_TTL", value_parser = humantime::parse_duration)]
    cache_ttl: Option<Duration>,
    /// Most sentiment results cached, 0 for none [default: 100000]; also
    /// `ASYNC_BATCH_RESULT_CACHE_MAX_SIZE`.
    #[arg(long, env = "FERRY_CACHE_SIZE")]
    cache_size: Option<usize>,
}

impl CacheArgs {
    fn resolve(
        &self,
        file_ttl: Option<&str>,
        file_size: Option<usize>,
        table: &str,
    ) -> anyhow::Result<CacheOptions> {
        let defaults = CacheOptions::default();
        let env_ttl =
            config::async_batch::<u64>("ASYNC_BATCH_CACHE_TTL_SECONDS")?.map(Duration::from_secs);
        Ok(CacheOptions {
            ttl: first(
                self.cache_ttl,
                env_ttl,
                file_duration(file_ttl, table, "cache_ttl")?,
            )
            .unwrap_or(defaults.ttl),
            capacity: first(
                self.cache_size,
                config::async_batch("ASYNC_BATCH_RESULT_CACHE_MAX_SIZE")?,
                file_size,
            )
            .unwrap_or(defaults.capacity),
        })
    }
}

/// The first of a flag (or its `FERRY_*` variable), a KubeSentiment variable and the file.
fn first<T>(flag: Option<T>, async_batch: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(async_batch).or(file)
}

/// Options of `ferry worker`. Each flag may also come from the environment variable shown
/// and from the `[worker]` table of `--config`; precedence: flag, environment, file,
/// default.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Settings file (TOML): its `[worker]` table gives any setting not set by a flag or
    /// the environment; its `[handler.NAME]` tables add handlers (as for `ferry serve`).
    #[arg(long, env = "FERRY_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The store: an SQLite file or a postgres:// URL shared by several workers (required,
    /// here or in the file).
    #[arg(long, env = "FERRY_STORE")]
    store: Option<String>,
    /// This worker's identity in leases [default: worker-PID].
    #[arg(long, env = "FERRY_WORKER_ID")]
    id: Option<String>,
    /// PostgreSQL only: keep everything in this schema (created if missing), as
    /// `PgStore::connect_with_schema`; wake-ups then travel on `ferry_work_<schema>`.
    #[arg(long, env = "FERRY_SCHEMA")]
    schema: Option<String>,
    /// Lease length: a killed worker's items are rescued by another worker at most about
    /// 1⅓ leases after its last renewal (renewals and rescues run every third of a lease)
    /// [default: 30s].
    #[arg(long, env = "FERRY_LEASE", value_parser = humantime::parse_duration)]
    lease: Option<Duration>,
    /// Most items per claim [default: 512].
    #[arg(long, env = "FERRY_CLAIM_BATCH")]
    claim_batch: Option<usize>,
    /// Most items of each tenant in flight at once, as `ferry serve --tenant-max-in-flight`
    /// (give every process the same). Unlimited when not given.
    #[arg(long, env = "FERRY_TENANT_MAX_IN_FLIGHT", value_name = "ITEMS")]
    tenant_max_in_flight: Option<NonZeroU64>,
    /// Serve /metrics, /healthz and /readyz on this address (no API key: keep it where
    /// only the monitoring reaches it) [default: none].
    #[arg(long, env = "FERRY_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Log lines as `text` or `json` (one object per line) [default: text].
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// The log format `serve` or `worker` asked for: flag or environment, else its file's.
pub(crate) fn log_format(
    flag: Option<LogFormat>,
    config: Option<&std::path::Path>,
    worker: bool,
) -> anyhow::Result<LogFormat> {
    if let Some(format) = flag {
        return Ok(format);
    }
    let file = config::load(config)?;
    let from_file = if worker {
        file.worker.log_format
    } else {
        file.serve.log_format
    };
    Ok(from_file.unwrap_or_default())
}

impl ServeArgs {
    /// The settings `ferry serve` runs with, where it listens, and the sentiment cache.
    fn resolve(&self) -> anyhow::Result<(ServeOptions, SocketAddr, CacheOptions)> {
        let file = config::load(self.config.as_deref())?.serve;
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
        let store = self
            .store
            .clone()
            .or(file.store.clone())
            .unwrap_or_else(|| "ferry.db".into());
        let mut options = ServeOptions::new(store);
        options.worker = !self.no_worker.or(file.no_worker).unwrap_or(false);
        if let Some(ttl) = self.result_ttl.or(file_duration(
            file.result_ttl.as_deref(),
            "serve",
            "result_ttl",
        )?) {
            anyhow::ensure!(!ttl.is_zero(), "result_ttl must be greater than zero");
            options.result_ttl = ttl;
        }
        options.tenant_rps = self.tenant_rps.or(file.tenant_rps);
        options.quotas = TenantQuotas {
            max_queued: self.tenant_max_queued.or(file.tenant_max_queued),
            max_in_flight: self.tenant_max_in_flight.or(file.tenant_max_in_flight),
        };
        let mut store_options = StoreOptions::new();
        for (priority, flag, name, from_file) in [
            (
                Priority::High,
                self.queue_limit_high,
                "ASYNC_BATCH_PRIORITY_HIGH_LIMIT",
                file.queue_limit_high,
            ),
            (
                Priority::Medium,
                self.queue_limit_medium,
                "ASYNC_BATCH_PRIORITY_MEDIUM_LIMIT",
                file.queue_limit_medium,
            ),
            (
                Priority::Low,
                self.queue_limit_low,
                "ASYNC_BATCH_PRIORITY_LOW_LIMIT",
                file.queue_limit_low,
            ),
        ] {
            if let Some(limit) = first(flag, config::async_batch(name)?, from_file) {
                store_options = store_options.queue_limit(priority, limit);
            }
        }
        options.store_options = store_options;
        let cache = self
            .cache
            .resolve(file.cache_ttl.as_deref(), file.cache_size, "serve")?;
        let defaults = BatchApiOptions::default();
        options.batch = BatchApiOptions {
            enabled: !first(
                self.no_batch_api,
                config::async_batch_disabled()?,
                file.no_batch_api,
            )
            .unwrap_or(false),
            max_texts: first(
                self.max_texts,
                config::async_batch("ASYNC_BATCH_MAX_BATCH_SIZE")?,
                file.max_texts,
            )
            .unwrap_or(defaults.max_texts),
            default_timeout_seconds: first(
                self.default_timeout_seconds,
                config::async_batch("ASYNC_BATCH_DEFAULT_TIMEOUT_SECONDS")?,
                file.default_timeout_seconds,
            )
            .filter(|t| *t > 0.0),
            max_jobs: first(
                self.max_jobs,
                config::async_batch("ASYNC_BATCH_MAX_JOBS")?,
                file.max_jobs,
            ),
        };
        anyhow::ensure!(options.batch.max_texts > 0, "max_texts must be at least 1");
        Ok((options, listen, cache))
    }
}

impl WorkerArgs {
    /// The settings `ferry worker` runs with (its handlers still the built-in ones), and the
    /// sentiment cache.
    fn resolve(&self) -> anyhow::Result<(WorkerRun, CacheOptions)> {
        let file = config::load(self.config.as_deref())?.worker;
        let Some(store) = self.store.clone().or(file.store.clone()) else {
            anyhow::bail!(
                "ferry worker needs a store: --store, FERRY_STORE or `store` in the [worker] \
                 table of --config"
            );
        };
        let mut run = WorkerRun::new(store);
        run.schema = self.schema.clone().or(file.schema.clone());
        run.metrics_addr = self.metrics_addr.or(file.metrics_addr);
        let mut worker = WorkerOptions::default();
        if let Some(id) = self.id.clone().or(file.id.clone()) {
            worker.id = id;
        }
        if let Some(lease) = self
            .lease
            .or(file_duration(file.lease.as_deref(), "worker", "lease")?)
        {
            anyhow::ensure!(!lease.is_zero(), "lease must be greater than zero");
            worker.lease = lease;
        }
        if let Some(n) = self.claim_batch.or(file.claim_batch) {
            anyhow::ensure!(n > 0, "claim_batch must be at least 1");
            worker.claim_batch = n;
        }
        worker.tenant_max_in_flight = self.tenant_max_in_flight.or(file.tenant_max_in_flight);
        run.worker = worker;
        let cache = self
            .cache
            .resolve(file.cache_ttl.as_deref(), file.cache_size, "worker")?;
        Ok((run, cache))
    }
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
    let (mut options, listen, cache) = args.resolve()?;
    options.handlers = handlers(args.config.as_deref(), options.worker, cache).await?;
    Service::open(options)
        .await?
        .serve(listen, shutdown_signal())
        .await?;
    Ok(())
}

pub(crate) async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let (mut run, cache) = args.resolve()?;
    run.handlers = handlers(args.config.as_deref(), true, cache).await?;
    run_worker_with(run, shutdown_signal()).await?;
    Ok(())
}
