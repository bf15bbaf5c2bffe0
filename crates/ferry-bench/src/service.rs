//! The `service` benchmark's run: per store a fresh target, the API and its workers, the
//! warm-up job, the measured load from M clients, and the printed figures beside the
//! baseline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_models::sentiment::sample_texts;
use ferry_server::{app, AppState, Worker, WorkerOptions};
use ferry_store::StoreOptions;
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::args::{HandlerKind, ServiceArgs};
use crate::baseline::{baseline_predict, baseline_sql};
use crate::client::Client;
use crate::target::{is_postgres, pg_reachable, redact, Target};
use crate::workers::spawn_workers;

/// The PostgreSQL tried when no `--store` is given: `$DATABASE_URL`, else this.
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `ferry-bench service`: each store in turn, measured and printed.
pub(crate) async fn run(args: ServiceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.jobs > 0 && args.items > 0 && args.clients > 0,
        "--jobs, --items and --clients must be at least 1"
    );
    if let Some(url) = &args.url {
        return crate::remote::run(url, &args).await;
    }
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
        if !args.no_baseline && args.handler != HandlerKind::Sleep {
            let (what, base) = match args.handler {
                HandlerKind::Sentiment => (
                    "direct predict() calls on the same texts, one thread".to_owned(),
                    baseline_predict(&corpus),
                ),
                HandlerKind::Echo | HandlerKind::Sleep => (
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

/// One measured run of the service.
pub(crate) struct Outcome {
    pub(crate) items: usize,
    pub(crate) elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Outcome {
    pub(crate) fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
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
    let client = Arc::new(Client::new(client, base, args.poll));
    let (outcome, worker_ended) = tokio::select! {
        e = stopped => (Err(e), true),
        outcome = load(&client, args, corpus, || ()) => (outcome, false),
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

/// The warm-up job, then the measured load; `on_start` runs as its clock starts.
pub(crate) async fn load(
    client: &Arc<Client>,
    args: &ServiceArgs,
    corpus: Arc<Vec<String>>,
    on_start: impl FnOnce(),
) -> anyhow::Result<Outcome> {
    // Untimed: engines started, connections open, the model loaded.
    let warm = sample_texts(args.items.min(1000), 0x0000_3a73);
    client.job(&warm).await.context("the warm-up job")?;
    on_start();

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

/// `12345.6` as `12,346`.
pub(crate) fn thousands(x: f64) -> String {
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
    fn formats_thousands() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
