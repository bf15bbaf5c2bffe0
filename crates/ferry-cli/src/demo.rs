//! `ferry demo`: the engine against the built-in simulated API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferry_core::testing::{SimulatedApi, SimulatedApiConfig, SimulatedApiHandler};
use ferry_core::{EngineConfig, Item, JsonlDeadLetters};
use tokio_util::sync::CancellationToken;

use crate::interrupt::{self, Exit};

/// Options of `ferry demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Items to send.
    #[arg(long, default_value_t = 200_000)]
    items: u64,
    /// Engine preset: standard, high_throughput, low_memory.
    #[arg(long, default_value = "standard")]
    preset: String,
    /// Cap on calls in flight (the adaptive controller works under it).
    #[arg(long)]
    max_concurrent: Option<usize>,
    /// Simulator: parallel slots.
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// Simulator: fixed cost per request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    base_ms: u64,
    /// Simulator: cost per item, in microseconds.
    #[arg(long, default_value_t = 200)]
    per_item_us: u64,
    /// Simulator: requests with more items than this time out.
    #[arg(long, default_value_t = 200)]
    size_limit: usize,
    /// Simulator: requests admitted per second (429 with Retry-After beyond).
    #[arg(long, default_value_t = 200)]
    rate_limit: u32,
    /// Simulator: every item whose key is a multiple of N is rejected (0: none). Each such
    /// item is isolated by splitting and dead-lettered; the exit code is then 3.
    #[arg(long, default_value_t = 0)]
    poison_every: u64,
    /// Where dead letters go (JSON Lines).
    #[arg(long, default_value = "ferry-demo-dead-letters.jsonl")]
    dead_letters: PathBuf,
    /// After Ctrl-C or SIGTERM, how long calls in flight may finish before they are
    /// abandoned; the demo then prints its report and exits 130.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    grace: Duration,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<Exit> {
    // First, so that a Ctrl-C at any point from here on ends the demo with its report.
    let shutdown = CancellationToken::new();
    interrupt::on_signals(shutdown.clone(), args.grace)?;
    let mut config = EngineConfig::preset(&args.preset).with_context(|| {
        format!(
            "unknown preset `{}` (expected standard, high_throughput or low_memory)",
            args.preset
        )
    })?;
    if let Some(n) = args.max_concurrent {
        anyhow::ensure!(n > 0, "--max-concurrent must be at least 1");
        match &mut config.dispatch.concurrency {
            ferry_core::Concurrency::Adaptive(c) => {
                c.max = n;
                c.initial = c.initial.min(n);
            }
            ferry_core::Concurrency::Fixed(f) => *f = std::num::NonZeroUsize::new(n).unwrap_or(*f),
        }
    }
    config.dispatch.timeout = Duration::from_secs(10);
    config.shutdown_grace = args.grace;
    let sim = SimulatedApiConfig {
        slots: args.slots.max(1),
        base: Duration::from_millis(args.base_ms),
        per_item: Duration::from_micros(args.per_item_us),
        size_limit: args.size_limit.max(1),
        server_timeout: Duration::from_secs(3),
        rate_limit: args.rate_limit.max(1),
        poison_every: (args.poison_every > 0).then_some(args.poison_every),
    };
    let api = SimulatedApi::new(sim);
    eprintln!(
        "simulated API: {} slots, {} ms + {} µs/item, size limit {}, {} requests/s -> ceiling {:.0} items/s",
        sim.slots,
        args.base_ms,
        args.per_item_us,
        sim.size_limit,
        sim.rate_limit,
        sim.ceiling()
    );
    // Start from an empty dead-letter file so the report describes this run only.
    let _ = std::fs::remove_file(&args.dead_letters);
    let running = ferry_core::Engine::new(config, SimulatedApiHandler(api.clone()))?
        .dead_letters(JsonlDeadLetters::new(&args.dead_letters))
        .cancellation(shutdown.clone())
        .total(args.items)
        .start();
    let bar = crate::progress::spawn(running.progress(), args.items);
    let intake = running.intake();
    for i in 0..args.items {
        // The engine closes its intake when `shutdown` is cancelled: the push fails then.
        if shutdown.is_cancelled() || intake.push(Item::new(i, i, i)).await.is_err() {
            break;
        }
    }
    drop(intake);
    let report = running.finish().await?;
    bar.await.ok();
    let stats = api.stats();
    println!("{report}");
    println!(
        "simulator: {} requests, {} items applied, {} x 429, {} timeouts, {} rejected; ferry reached {:.0}% of the ceiling",
        stats.requests,
        stats.items_applied,
        stats.rejected_429,
        stats.timeouts,
        stats.rejected_400,
        100.0 * report.items_per_sec / sim.ceiling()
    );
    let interrupted = shutdown.is_cancelled();
    if interrupted {
        interrupt::print_summary(&report);
    }
    Ok(Exit::of(&report, interrupted))
}
