//! The baselines a service figure is printed beside, measured in the same run on the same
//! texts: direct model calls, or the same rows written by plain SQL on a fresh copy of the
//! store's tables (this crate is the only place outside ferry-store that knows them; the
//! statements follow the store's migrations, and the run fails loudly if they drift).

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_store::StoreOptions;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::args::ServiceArgs;
use crate::target::Target;

/// A baseline's figure.
pub(crate) struct Rate {
    /// Items written or scored.
    pub(crate) items: usize,
    /// The time they took.
    pub(crate) elapsed: Duration,
}

impl Rate {
    /// Items per second.
    pub(crate) fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Direct model calls on the corpus, one thread.
pub(crate) fn baseline_predict(corpus: &[String]) -> Rate {
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
pub(crate) async fn baseline_sql(
    spec: &str,
    args: &ServiceArgs,
    corpus: &[String],
) -> anyhow::Result<Rate> {
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
