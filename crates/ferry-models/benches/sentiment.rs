#![allow(missing_docs)] // criterion_group! generates an undocumented function.
//! 10,000 varied English sentences scored by VADER: by direct `analyze` calls in a loop (the
//! baseline), by direct `predict` calls (the seed-001 shape: timing and strings added), and
//! through `ferry_core::Engine` with `SentimentHandler` and `EngineConfig::standard()`.
//!
//! `cargo bench -p ferry-models --bench sentiment`. After criterion's report it prints each
//! path's texts/s and its share of the baseline, from its own interleaved timed runs (median of
//! 15), since criterion does not hand its estimates back.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use ferry_core::{Engine, EngineConfig, Item};
use ferry_models::sentiment::{analyze, predict, preload, sample_texts, SentimentHandler};

const TEXTS: usize = 10_000;

/// The sample corpus `ferry-bench service` uses too: varied review sentences with negations,
/// boosters, "but" clauses, capitals, punctuation, emoticons and emoji.
fn texts() -> Vec<String> {
    sample_texts(TEXTS, 0x2014_1cf5_ead0_0001)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn items(texts: &[String]) -> Vec<Item<String>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Item::new(i as u64, i as u64, t.clone()).with_bytes(t.len()))
        .collect()
}

fn direct_analyze(texts: &[String]) -> f64 {
    texts.iter().map(|t| analyze(black_box(t)).compound).sum()
}

fn direct_predict(texts: &[String]) -> f64 {
    texts.iter().map(|t| predict(black_box(t)).score).sum()
}

async fn engine(items: Vec<Item<String>>) -> u64 {
    let report = Engine::new(EngineConfig::standard(), SentimentHandler::new())
        .expect("config")
        .run_iter(items)
        .await
        .expect("run");
    assert_eq!(report.progress.succeeded, TEXTS as u64);
    report.progress.succeeded
}

fn bench(c: &mut Criterion) {
    preload();
    let texts = texts();
    let rt = runtime();
    let mut group = c.benchmark_group("sentiment 10k texts");
    group.throughput(Throughput::Elements(TEXTS as u64));
    group.sample_size(20);
    group.bench_function("direct analyze loop (baseline)", |b| {
        b.iter(|| direct_analyze(&texts))
    });
    group.bench_function("direct predict loop", |b| b.iter(|| direct_predict(&texts)));
    group.bench_function("ferry engine, SentimentHandler, standard config", |b| {
        b.to_async(&rt)
            .iter_batched(|| items(&texts), engine, BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}

/// Rounds of the three paths for the printed ratio; interleaved, so that a load change on a
/// shared machine hits all three alike.
const ROUNDS: usize = 15;

fn report_ratio() {
    let texts = texts();
    let rt = runtime();
    let mut runs: [Vec<Duration>; 3] = Default::default();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        black_box(direct_analyze(&texts));
        runs[0].push(started.elapsed());

        let started = Instant::now();
        black_box(direct_predict(&texts));
        runs[1].push(started.elapsed());

        let items = items(&texts);
        let started = Instant::now();
        black_box(rt.block_on(engine(items)));
        runs[2].push(started.elapsed());
    }
    let median = |runs: &mut Vec<Duration>| {
        runs.sort();
        runs[runs.len() / 2]
    };
    let [a, p, e] = &mut runs;
    let (analyze_t, predict_t, engine_t) = (median(a), median(p), median(e));
    let rate = |d: Duration| TEXTS as f64 / d.as_secs_f64();
    println!("\nsentiment, {TEXTS} texts (median of {ROUNDS} interleaved rounds):");
    for (name, d) in [
        ("direct analyze loop (baseline)", analyze_t),
        ("direct predict loop", predict_t),
        ("ferry engine, standard config", engine_t),
    ] {
        println!(
            "  {name:<32} {:>9.2} ms  {:>10.0} texts/s  {:>6.1} % of baseline throughput",
            d.as_secs_f64() * 1e3,
            rate(d),
            100.0 * rate(d) / rate(analyze_t)
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let listing_or_testing = std::env::args().any(|a| a == "--list" || a == "--test");
    if !listing_or_testing {
        report_ratio();
    }
}
