#![allow(missing_docs)] // criterion_group! generates an undocumented function.
//! 1,000,000 small items through Batcher -> Dispatcher with a no-op handler, beside the same
//! items through a raw bounded `tokio::sync::mpsc` channel, in the same run.
//!
//! `cargo bench -p ferry-core --bench throughput`; the ratio goes to BENCHMARKS.md.

use std::num::NonZeroUsize;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_core::{
    handler_fn, Batch, BatchOutcome, Concurrency, Engine, EngineConfig, FlushPolicy, Item,
};

const ITEMS: u64 = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Baseline: one producer, one consumer, a bounded channel of the engine's intake capacity.
async fn raw_channel() -> u64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let producer = tokio::spawn(async move {
        for i in 0..ITEMS {
            if tx.send(i).await.is_err() {
                break;
            }
        }
    });
    let mut sum = 0u64;
    while let Some(v) = rx.recv().await {
        sum = sum.wrapping_add(v);
    }
    let _ = producer.await;
    sum
}

async fn ferry(config: EngineConfig) -> u64 {
    let handler = handler_fn(|batch: &Batch<u64>| {
        let n = batch.len();
        Box::pin(async move { BatchOutcome::success(n) })
    });
    let running = Engine::new(config, handler).expect("config").start();
    let intake = running.intake();
    let producer = tokio::spawn(async move {
        for i in 0..ITEMS {
            if intake.push(Item::new(i, i, i)).await.is_err() {
                break;
            }
        }
    });
    let _ = producer.await;
    let report = running.finish().await.expect("run");
    assert_eq!(report.progress.succeeded, ITEMS);
    report.progress.succeeded
}

fn fixed_config() -> EngineConfig {
    let mut c = EngineConfig::high_throughput();
    c.flush = FlushPolicy::new().max_items(NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN));
    c.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN));
    c
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("1M items");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(10);
    group.bench_function("raw bounded mpsc (baseline)", |b| {
        b.to_async(&rt).iter(raw_channel)
    });
    group.bench_function("ferry batcher+dispatcher, fixed 1000 x 4", |b| {
        b.to_async(&rt).iter(|| ferry(fixed_config()))
    });
    group.bench_function("ferry batcher+dispatcher, standard (adaptive)", |b| {
        b.to_async(&rt).iter(|| ferry(EngineConfig::standard()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
