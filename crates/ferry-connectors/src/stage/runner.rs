//! Running a stage: a dispatcher task cuts the input stream into chunks and hands each to
//! the stage's pool (rayon), queueing the chunk's answer in order; a collector task awaits
//! the answers in that order and sends their items on, through a channel of `queue` items.
//!
//! Both queues are bounded (a few chunks per worker; then `queue` items), so a slow next
//! step stops the collector, which stops the dispatcher, which stops reading: back-pressure
//! end to end. A chunk is what the input has ready, up to [`CHUNK`] items, so a slow source
//! still gets its items through one by one.

use std::sync::Arc;
use std::time::Instant;

use ferry_core::{Item, Key};
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::api::{Stage, StageKey, StageSettings};
use super::profile::StageStats;
use crate::error::Error;
use crate::source::ItemStream;

/// The most items handed to a worker at once.
const CHUNK: usize = 64;

type Results = Vec<Result<Item<Value>, Error>>;

/// Runs `stage` over `input` with `settings` (see the module docs), counting into `stats`;
/// the returned stream yields its output items, in input order, and the input's errors
/// where they were. An item the stage refuses becomes an [`Error::Stage`] (a record error:
/// the runner dead-letters it). Must be called inside a Tokio runtime.
pub fn run_stage(
    mut input: ItemStream,
    stage: Arc<dyn Stage>,
    settings: &StageSettings,
    stats: Arc<StageStats>,
) -> Result<ItemStream, Error> {
    let workers = settings.worker_threads();
    stats.set_workers(workers);
    let name = settings.name.clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(move |i| format!("ferry-stage-{i}"))
        .build()
        .map_err(|e| Error::Io {
            path: format!("stage `{}`", settings.name).into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let (order_tx, mut order_rx) = mpsc::channel::<oneshot::Receiver<Results>>(workers * 2 + 2);
    let (out_tx, out_rx) = mpsc::channel::<Result<Item<Value>, Error>>(settings.queue.max(1));
    stats.set_queue(out_tx.downgrade(), settings.queue.max(1));
    // Held by the collector too, so the pool outlives every chunk handed to it.
    let pool = Arc::new(pool);
    let collect_pool = Arc::clone(&pool);
    let key = settings.key.clone();
    let dispatch_stats = Arc::clone(&stats);
    tokio::spawn(async move {
        let stats = dispatch_stats;
        loop {
            let t = Instant::now();
            let Some(first) = input.next().await else {
                break;
            };
            stats.add_waiting(t);
            let mut chunk = vec![first];
            while chunk.len() < CHUNK {
                match input.next().now_or_never() {
                    Some(Some(next)) => chunk.push(next),
                    _ => break,
                }
            }
            let (tx, rx) = oneshot::channel();
            let (stage, stats_w, name, key) = (
                Arc::clone(&stage),
                Arc::clone(&stats),
                name.clone(),
                key.clone(),
            );
            pool.spawn(move || {
                let started = Instant::now();
                let out = process_chunk(&*stage, &name, &key, chunk, &stats_w);
                stats_w.add_busy(started);
                let _ = tx.send(out);
            });
            // Waiting here is waiting for the stage's own workers (a full order queue); the
            // collector counts the waits on the next step.
            if order_tx.send(rx).await.is_err() {
                return;
            }
        }
    });
    let collect_stats = Arc::clone(&stats);
    let stage_name = settings.name.clone();
    tokio::spawn(async move {
        let _pool = collect_pool;
        while let Some(rx) = order_rx.recv().await {
            let Ok(results) = rx.await else {
                // A worker panicked: say so rather than end as if the input had.
                let _ = out_tx
                    .send(Err(Error::Io {
                        path: format!("stage `{stage_name}`").into(),
                        source: std::io::Error::other("a worker of the stage stopped (panicked)"),
                    }))
                    .await;
                return;
            };
            let t = Instant::now();
            for r in results {
                if out_tx.send(r).await.is_err() {
                    return;
                }
            }
            collect_stats.add_blocked(t);
        }
    });
    Ok(Box::pin(tokio_stream_of(out_rx)))
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Runs the stage over one chunk: errors pass through, each item becomes its outputs (or
/// its dead letter).
fn process_chunk(
    stage: &dyn Stage,
    name: &str,
    key: &StageKey,
    chunk: Vec<Result<Item<Value>, Error>>,
    stats: &StageStats,
) -> Results {
    let mut out = Vec::with_capacity(chunk.len());
    for next in chunk {
        let item = match next {
            Ok(item) => item,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        stats.count_in();
        let fail = |item: &Item<Value>, message: String| Error::Stage {
            stage: name.to_owned(),
            key: item.key().to_string(),
            message,
            payload: Box::new(item.payload().clone()),
        };
        let values = match stage.process(item.payload()) {
            Ok(values) => values,
            Err(e) => {
                stats.count_error();
                out.push(Err(fail(&item, e.message)));
                continue;
            }
        };
        let n = values.len();
        let keyed: Result<Vec<(Key, Value)>, String> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Ok((output_key(key, item.key(), i, n, &v)?, v)))
            .collect();
        match keyed {
            Ok(keyed) => {
                stats.count_out(keyed.len());
                for (k, v) in keyed {
                    let bytes = approx_size(&v);
                    out.push(Ok(Item::new(k, item.index(), v)
                        .with_priority(item.priority())
                        .with_bytes(bytes)));
                }
            }
            Err(m) => {
                stats.count_error();
                out.push(Err(fail(&item, m)));
            }
        }
    }
    out
}

/// The key of output `i` of `n` of the item keyed `input` (see [`StageKey`]).
fn output_key(
    key: &StageKey,
    input: &Key,
    i: usize,
    n: usize,
    value: &Value,
) -> Result<Key, String> {
    match key {
        StageKey::Inherit if n == 1 => Ok(input.clone()),
        StageKey::Inherit => Ok(Key::from(format!("{}/{}", input.as_str(), i + 1))),
        StageKey::Fields(fields) => {
            let mut parts = Vec::with_capacity(fields.len());
            for f in fields {
                match value.get(f) {
                    None | Some(Value::Null) => {
                        return Err(format!("key field `{f}` is missing in output {}", i + 1))
                    }
                    Some(Value::String(s)) if s.is_empty() => {
                        return Err(format!("key field `{f}` is empty in output {}", i + 1))
                    }
                    Some(Value::String(s)) => parts.push(s.clone()),
                    Some(other) => parts.push(other.to_string()),
                }
            }
            Ok(Key::from(parts.join("/")))
        }
    }
}

/// Approximate size of a payload for the batcher's byte cap: string lengths, 8 per number.
fn approx_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(_) => 8,
        Value::String(s) => s.len(),
        Value::Array(values) => values.iter().map(approx_size).sum::<usize>() + 2,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + approx_size(v)).sum(),
    }
}
