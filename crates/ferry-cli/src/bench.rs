//! `ferry bench service`: the job service end to end under load, beside a baseline measured
//! in the same run.
//!
//! Per store, in turn: a fresh store (`sqlite`: a new file in a temporary directory; a
//! `postgres://` URL: a new schema, dropped afterwards), the API on `127.0.0.1:0` in this
//! process, and either one in-process worker (`--workers 0`, as `ferry serve` runs) or W
//! `ferry worker` processes (this binary). One warm-up job first, untimed. Then M clients
//! share K jobs of N generated texts: each submits a job through seed 001's
//! `POST /api/v1/batch/predict`, polls `GET status/{id}` every `--poll` until it is
//! `completed`, fetches `GET results/{id}` (and checks every text has a result), then takes
//! the next job. Printed: items/s from the first submit to the last results page, and
//! submit-to-done latency (submit sent until `completed` seen) p50/p95/p99.
//!
//! Baselines, same texts, same run: for `sentiment`, direct `predict` calls in one thread;
//! for `echo` (the no-op handler), the same rows written by plain SQL on the same store's
//! tables (each job: insert its row and its items, mark the items done, insert their
//! results, mark the job completed), from M concurrent connections.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use ferry_models::sentiment::sample_texts;
use ferry_server::{app, AppState, Worker, WorkerOptions};
use ferry_store::{PgStore, SqliteStore, Store, StoreOptions};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio_util::sync::CancellationToken;

/// The PostgreSQL tried when no `--store` is given: `$DATABASE_URL`, else this.
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A job not completed this long after its submit fails the run.
const JOB_DEADLINE: Duration = Duration::from_secs(120);

/// Options of `ferry bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The job service end to end: K jobs x N items from M concurrent clients through the
    /// API, per store; prints items/s and submit-to-done latency p50/p95/p99 beside a
    /// baseline measured in the same run.
    Service(ServiceArgs),
}

/// Options of `ferry bench service`.
#[derive(Debug, Args)]
struct ServiceArgs {
    /// A store to run on (repeatable): `sqlite` (a new file in a temporary directory) or a
    /// postgres:// URL (a new schema in it, dropped afterwards). Default: `sqlite`, then
    /// PostgreSQL at $DATABASE_URL or postgres://postgres@127.0.0.1:5432/test if it answers.
    #[arg(long = "store")]
    stores: Vec<String>,
    /// Jobs submitted (K).
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    /// Items (texts) per job (N).
    #[arg(long, default_value_t = 100)]
    items: usize,
    /// Concurrent clients (M); each submits a job, polls it to completion, fetches its
    /// results, then takes the next.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// The handler jobs run: `sentiment` (the VADER model) or `echo` (no-op).
    #[arg(long, value_enum, default_value_t = HandlerKind::Sentiment)]
    handler: HandlerKind,
    /// Worker processes (`ferry worker`); 0 runs one worker inside the service process, as
    /// `ferry serve` does. SQLite wake-ups do not cross processes: use 0 there.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Pause between a client's status polls.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    poll: Duration,
    /// Skip the baselines.
    #[arg(long)]
    no_baseline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HandlerKind {
    Sentiment,
    Echo,
}

impl HandlerKind {
    fn name(self) -> &'static str {
        match self {
            HandlerKind::Sentiment => "sentiment",
            HandlerKind::Echo => "echo",
        }
    }
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Service(a) => service(a).await,
    }
}

async fn service(args: ServiceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.jobs > 0 && args.items > 0 && args.clients > 0,
        "--jobs, --items and --clients must be at least 1"
    );
    let stores = if args.stores.is_empty() {
        let pg = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let mut s = vec!["sqlite".to_owned()];
        match pg_reachable(&pg).await {
            Ok(()) => s.push(pg),
            Err(e) => eprintln!(
                "skipping PostgreSQL: {} does not answer ({e:#})",
                redact(&pg)
            ),
        }
        s
    } else {
        args.stores.clone()
    };
    let corpus = Arc::new(sample_texts(args.jobs * args.items, 0x5eed_0001));
    for spec in &stores {
        let target = Target::create(spec).await?;
        let outcome = measure(&target, &args, Arc::clone(&corpus)).await;
        let cleanup = target.remove().await;
        let outcome = outcome?;
        cleanup?;
        let workers = match args.workers {
            0 => "1 in-process worker".to_owned(),
            w => format!("{w} worker processes"),
        };
        println!(
            "store {}, handler {}, {} jobs x {} items, {} clients polling every {}, {workers}",
            target.describe(),
            args.handler.name(),
            args.jobs,
            args.items,
            args.clients,
            humantime::format_duration(args.poll)
        );
        println!(
            "  ferry:    {} items in {:.2} s = {} items/s; submit-to-done p50 {:.1} ms, \
             p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            thousands(outcome.items as f64),
            outcome.elapsed.as_secs_f64(),
            thousands(outcome.rate()),
            outcome.quantile_ms(0.50),
            outcome.quantile_ms(0.95),
            outcome.quantile_ms(0.99),
            outcome.quantile_ms(1.0),
        );
        if !args.no_baseline {
            let (what, base) = match args.handler {
                HandlerKind::Sentiment => (
                    "direct predict() calls on the same texts, one thread".to_owned(),
                    baseline_predict(&corpus),
                ),
                HandlerKind::Echo => (
                    format!(
                        "the same rows by plain SQL on the same tables, {} clients over {}",
                        args.clients,
                        if is_postgres(spec) {
                            format!("{} connections", args.clients)
                        } else {
                            "SQLite's one writer connection".to_owned()
                        }
                    ),
                    baseline_sql(spec, &args, &corpus).await?,
                ),
            };
            println!(
                "  baseline: {what}: {} items in {:.3} s = {} items/s",
                thousands(base.items as f64),
                base.elapsed.as_secs_f64(),
                thousands(base.rate())
            );
            println!(
                "  ferry / baseline: {:.1} %",
                100.0 * outcome.rate() / base.rate()
            );
        }
    }
    Ok(())
}

/// A baseline's figure.
struct Rate {
    items: usize,
    elapsed: Duration,
}

impl Rate {
    fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One measured run of the service.
struct Outcome {
    items: usize,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// A store made for one run.
enum Target {
    Sqlite { dir: PathBuf },
    Postgres { url: String, schema: String },
}

impl Target {
    async fn create(spec: &str) -> anyhow::Result<Target> {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_micros());
        let tag = format!("{}_{n}_{stamp}", std::process::id());
        if spec == "sqlite" {
            let dir = std::env::temp_dir().join(format!("ferry-bench-{tag}"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Ok(Target::Sqlite { dir })
        } else if is_postgres(spec) {
            Ok(Target::Postgres {
                url: spec.to_owned(),
                schema: format!("ferry_bench_{tag}"),
            })
        } else {
            bail!("--store takes `sqlite` or a postgres:// URL, not {spec:?}")
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Sqlite { .. } => "sqlite (a new file)".to_owned(),
            Target::Postgres { url, .. } => format!("{} (a new schema)", redact(url)),
        }
    }

    /// The `--store` (and `--schema`) a `ferry worker` process gets.
    fn worker_args(&self) -> Vec<String> {
        match self {
            Target::Sqlite { dir } => {
                vec!["--store".into(), dir.join("store.db").display().to_string()]
            }
            Target::Postgres { url, schema } => vec![
                "--store".into(),
                url.clone(),
                "--schema".into(),
                schema.clone(),
            ],
        }
    }

    async fn open(&self, options: StoreOptions) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Target::Sqlite { dir } => {
                Arc::new(SqliteStore::open_with(dir.join("store.db"), options).await?)
            }
            Target::Postgres { url, schema } => {
                Arc::new(PgStore::connect_with(url, Some(schema), options).await?)
            }
        })
    }

    async fn remove(&self) -> anyhow::Result<()> {
        match self {
            Target::Sqlite { dir } => {
                std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
            }
            Target::Postgres { url, schema } => {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .context("connecting to drop the bench schema")?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&pool)
                    .await
                    .with_context(|| format!("dropping schema {schema}"))?;
                Ok(())
            }
        }
    }
}

fn is_postgres(spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

async fn pg_reachable(url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await?;
    sqlx::query("SELECT 1").execute(&pool).await?;
    Ok(())
}

/// A URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `ferry worker` processes, killed on drop; `exited` names each one whose stderr closed
/// (it ended).
struct Processes {
    children: Vec<Child>,
    exited: tokio::sync::mpsc::UnboundedReceiver<usize>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `n` `ferry worker` processes on `target` and waits until each has opened the store.
fn spawn_workers(target: &Target, n: usize) -> anyhow::Result<Processes> {
    let exe = std::env::current_exe().context("locating the ferry binary")?;
    let (exit_tx, exited) = tokio::sync::mpsc::unbounded_channel();
    let mut processes = Processes {
        children: Vec::new(),
        exited,
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let mut child = Command::new(&exe)
            .arg("worker")
            .args(target.worker_args())
            .args(["--id", &format!("bench-worker-{i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting a ferry worker process")?;
        let stderr = child.stderr.take();
        processes.children.push(child);
        let ready = ready_tx.clone();
        let exit = exit_tx.clone();
        std::thread::spawn(move || {
            if let Some(stderr) = stderr {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("claiming from") {
                        let _ = ready.send(());
                    } else {
                        eprintln!("[worker {i}] {line}");
                    }
                }
            }
            let _ = exit.send(i);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        ready_rx
            .recv_timeout(left)
            .context("a ferry worker process did not open the store within 30 s")?;
    }
    Ok(processes)
}

async fn measure(
    target: &Target,
    args: &ServiceArgs,
    corpus: Arc<Vec<String>>,
) -> anyhow::Result<Outcome> {
    // Every client holds at most one unfinished job: the default queue limits never bind.
    let store = target.open(StoreOptions::new()).await?;
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let handlers = ferry_server::Handlers::builtin();
    let names = handlers.names();
    let (mut worker, mut processes) = if args.workers == 0 {
        let run = Worker::new(Arc::clone(&store), handlers, WorkerOptions::default())
            .run(shutdown.clone());
        (Some(tokio::spawn(run)), None)
    } else {
        (None, Some(spawn_workers(target, args.workers)?))
    };
    // Resolves if the workers stop: the run fails then, rather than wait for ever.
    let stopped = async {
        if let Some(w) = worker.as_mut() {
            return match w.await {
                Ok(Ok(report)) => anyhow::anyhow!("the worker stopped early: {report:?}"),
                Ok(Err(e)) => anyhow::Error::from(e).context("the worker failed"),
                Err(e) => anyhow::anyhow!("the worker task failed: {e}"),
            };
        }
        match processes.as_mut() {
            Some(p) => match p.exited.recv().await {
                Some(i) => anyhow::anyhow!("worker process {i} exited"),
                None => anyhow::anyhow!("the worker processes are gone"),
            },
            None => std::future::pending().await,
        }
    };
    let mut state = AppState::new(Arc::clone(&store));
    state.predict_handler = args.handler.name().to_owned();
    state.max_texts = state.max_texts.max(args.items);
    state.handlers = Arc::new(names);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app(state))
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the bench's API server failed");
        }
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let client = Arc::new(Client {
        http: client,
        base,
        poll: args.poll,
    });
    let (outcome, worker_ended) = tokio::select! {
        e = stopped => (Err(e), true),
        outcome = load(&client, args, corpus) => (outcome, false),
    };
    // Stop the server and the in-process worker before their store is removed.
    drop(client);
    shutdown.cancel();
    server.await?;
    if let Some(w) = worker.filter(|_| !worker_ended) {
        w.await??;
    }
    outcome
}

/// The warm-up job, then the measured load.
async fn load(
    client: &Arc<Client>,
    args: &ServiceArgs,
    corpus: Arc<Vec<String>>,
) -> anyhow::Result<Outcome> {
    // Untimed: engines started, connections open, the model loaded.
    let warm = sample_texts(args.items.min(1000), 0x0000_3a73);
    client.job(&warm).await.context("the warm-up job")?;

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, next) = (Arc::clone(client), Arc::clone(&next));
        let corpus = Arc::clone(&corpus);
        let (jobs, items) = (args.jobs, args.items);
        tasks.push(tokio::spawn(async move {
            let mut hist = latency_histogram()?;
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= jobs {
                    return Ok::<_, anyhow::Error>(hist);
                }
                let latency = client.job(&corpus[j * items..(j + 1) * items]).await?;
                hist.record(latency.as_micros().max(1) as u64)?;
            }
        }));
    }
    let mut latency_us = latency_histogram()?;
    for t in tasks {
        latency_us.add(t.await??)?;
    }
    let elapsed = started.elapsed();
    Ok(Outcome {
        items: args.jobs * args.items,
        elapsed,
        latency_us,
    })
}

fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

/// A seed-001 client of the service under test.
struct Client {
    http: reqwest::Client,
    base: String,
    poll: Duration,
}

impl Client {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(body)
    }

    /// Submits one job, polls it to completion and checks its results; returns the time from
    /// submit to `completed` seen.
    async fn job(&self, texts: &[String]) -> anyhow::Result<Duration> {
        let submitted = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/v1/batch/predict", self.base))
            .json(&json!({ "texts": texts }))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        anyhow::ensure!(status.is_success(), "submit: {status} {body}");
        let id = body["job_id"]
            .as_str()
            .context("submit: no job_id")?
            .to_owned();
        let deadline = submitted + JOB_DEADLINE;
        loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "job {id} did not complete within {JOB_DEADLINE:?}"
            );
            let s = self.get(&format!("/api/v1/batch/status/{id}")).await?;
            match s["status"].as_str() {
                Some("completed") => break,
                Some("pending" | "processing") => tokio::time::sleep(self.poll).await,
                other => bail!("job {id} ended {other:?}: {s}"),
            }
        }
        let latency = submitted.elapsed();
        let page_size = texts.len().clamp(1, 1000);
        let mut seen = 0;
        for page in 1.. {
            let r = self
                .get(&format!(
                    "/api/v1/batch/results/{id}?page={page}&page_size={page_size}"
                ))
                .await?;
            let results = r["results"].as_array().context("results: no array")?;
            if let Some(bad) = results.iter().find(|v| v.get("error").is_some()) {
                bail!("job {id} has a failed text: {bad}");
            }
            seen += results.len();
            if !r["has_more"].as_bool().unwrap_or(false) {
                break;
            }
        }
        anyhow::ensure!(
            seen == texts.len(),
            "job {id}: {seen} results for {} texts",
            texts.len()
        );
        Ok(latency)
    }
}

/// Direct model calls on the corpus, one thread.
fn baseline_predict(corpus: &[String]) -> Rate {
    let started = Instant::now();
    let mut positive = 0usize;
    for t in corpus {
        let p = ferry_models::sentiment::predict(t);
        positive += usize::from(p.score > 0.5);
    }
    let elapsed = started.elapsed();
    std::hint::black_box(positive);
    Rate {
        items: corpus.len(),
        elapsed,
    }
}

/// Plain SQL on a fresh copy of the store's tables: per job, its row and items inserted, the
/// items marked done, their results inserted, the job marked completed; `clients`
/// connections at once.
async fn baseline_sql(spec: &str, args: &ServiceArgs, corpus: &[String]) -> anyhow::Result<Rate> {
    let target = Target::create(spec).await?;
    let result = baseline_sql_on(&target, args, corpus).await;
    target.remove().await?;
    result
}

async fn baseline_sql_on(
    target: &Target,
    args: &ServiceArgs,
    corpus: &[String],
) -> anyhow::Result<Rate> {
    // Opening the store creates the tables (the migrations), nothing else.
    drop(target.open(StoreOptions::new()).await?);
    let payloads: Vec<String> = corpus
        .iter()
        .map(|t| Value::from(t.as_str()).to_string())
        .collect();
    let payloads = Arc::new(payloads);
    let next = Arc::new(AtomicUsize::new(0));
    let (jobs, items) = (args.jobs, args.items);
    let pool = match target {
        Target::Postgres { url, schema } => {
            let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
            Pool::Pg(
                PgPoolOptions::new()
                    .max_connections(args.clients as u32)
                    .min_connections(args.clients as u32)
                    .connect_with(options)
                    .await?,
            )
        }
        // SQLite has one writer: one connection, as the store itself writes.
        Target::Sqlite { dir } => Pool::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(dir.join("store.db"))
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(30)),
                )
                .await?,
        ),
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (pool, next, payloads) = (pool.clone(), Arc::clone(&next), Arc::clone(&payloads));
        tasks.push(tokio::spawn(async move {
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= jobs {
                    return Ok::<(), anyhow::Error>(());
                }
                let job = format!("baseline-{j}");
                let values = &payloads[j * items..(j + 1) * items];
                match &pool {
                    Pool::Pg(pool) => pg_rows(pool, &job, values).await?,
                    Pool::Sqlite(pool) => sqlite_rows(pool, &job, values).await?,
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(Rate {
        items: jobs * items,
        elapsed: started.elapsed(),
    })
}

/// A connection pool of either backend, for the plain-SQL baseline.
#[derive(Clone)]
enum Pool {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

const BASELINE_JOB: &str = "INSERT INTO jobs (id, tenant, handler, params, priority, status, \
     total, created_at) VALUES ($1, '', 'echo', 'null', 1, 'pending', $2, $3)";
const BASELINE_DONE: &str = "UPDATE items SET state = 'done' WHERE job_id = $1";
const BASELINE_RESULTS: &str = "INSERT INTO results (item_id, result, recorded_at) \
     SELECT id, payload, $2 FROM items WHERE job_id = $1";
const BASELINE_COMPLETED: &str =
    "UPDATE jobs SET succeeded = total, status = 'completed', completed_at = $2 WHERE id = $1";

/// One job's rows by plain SQL on PostgreSQL: the items in one `UNNEST` insert.
async fn pg_rows(pool: &sqlx::PgPool, job: &str, payloads: &[String]) -> anyhow::Result<()> {
    let now = unix_now();
    let keys: Vec<String> = (0..payloads.len()).map(|i| i.to_string()).collect();
    sqlx::query(BASELINE_JOB)
        .bind(job)
        .bind(payloads.len() as i64)
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO items (job_id, key, payload, priority, state, available_at) \
         SELECT $1, k, p::json, 1, 'queued', $2 FROM UNNEST($3::text[], $4::text[]) AS t (k, p)",
    )
    .bind(job)
    .bind(now)
    .bind(&keys)
    .bind(payloads)
    .execute(pool)
    .await?;
    sqlx::query(BASELINE_DONE).bind(job).execute(pool).await?;
    sqlx::query(BASELINE_RESULTS)
        .bind(job)
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(BASELINE_COMPLETED)
        .bind(job)
        .bind(unix_now())
        .execute(pool)
        .await?;
    Ok(())
}

/// One job's rows by plain SQL on SQLite: the items in multi-row inserts of 500, in one
/// transaction, as the store inserts them.
async fn sqlite_rows(
    pool: &sqlx::SqlitePool,
    job: &str,
    payloads: &[String],
) -> anyhow::Result<()> {
    let now = unix_now();
    sqlx::query(BASELINE_JOB)
        .bind(job)
        .bind(payloads.len() as i64)
        .bind(now)
        .execute(pool)
        .await?;
    let mut tx = pool.begin().await?;
    for (c, chunk) in payloads.chunks(500).enumerate() {
        let mut q = String::from(
            "INSERT INTO items (job_id, key, payload, priority, state, available_at) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                q.push_str(", ");
            }
            let (k, p) = (3 + 2 * i, 4 + 2 * i);
            q.push_str(&format!("($1, ${k}, ${p}, 1, 'queued', $2)"));
        }
        let mut query = sqlx::query(&q).persistent(false).bind(job).bind(now);
        for (i, p) in chunk.iter().enumerate() {
            query = query.bind((c * 500 + i).to_string()).bind(p);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    sqlx::query(BASELINE_DONE).bind(job).execute(pool).await?;
    sqlx::query(BASELINE_RESULTS)
        .bind(job)
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(BASELINE_COMPLETED)
        .bind(job)
        .bind(unix_now())
        .execute(pool)
        .await?;
    Ok(())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `12345.6` as `12,346`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_redacts() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
