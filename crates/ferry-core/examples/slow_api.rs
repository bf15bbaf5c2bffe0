//! Batches a stream of 20,000 records into a simulated slow, rate-limited API and shows
//! progress while Ferry learns how hard it can push.
//!
//! `cargo run --release -p ferry-core --example slow_api`
//!
//! The API has 8 parallel slots, costs 20 ms + 0.5 ms per item, times out requests of more
//! than 150 items (after 2 s) and admits 60 requests per second. Ferry is told none of that.

use std::time::Duration;

use ferry_core::testing::{SimulatedApi, SimulatedApiConfig, SimulatedApiHandler};
use ferry_core::{Engine, EngineConfig, Item, MemoryDeadLetters};

#[tokio::main]
async fn main() -> Result<(), ferry_core::Error> {
    let api = SimulatedApi::new(SimulatedApiConfig {
        slots: 8,
        base: Duration::from_millis(20),
        per_item: Duration::from_micros(500),
        size_limit: 150,
        server_timeout: Duration::from_secs(2),
        rate_limit: 60,
        poison_every: Some(4999),
    });
    let items = 20_000u64;
    println!("theoretical ceiling: {:.0} items/s", api.config().ceiling());

    let dead = MemoryDeadLetters::new();
    let running = Engine::new(EngineConfig::standard(), SimulatedApiHandler(api.clone()))?
        .dead_letters(dead.clone())
        .total(items)
        .start();

    // Progress: the same watch channel a progress bar or an SSE stream would read.
    let mut progress = running.progress();
    let printer = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            ticker.tick().await;
            let p = progress.borrow_and_update().clone();
            println!(
                "{:>6}/{} done  {:>7.0} items/s  eta {:>5.1?}  concurrency {:>2}  batch {:>3}  retries {}  splits {}",
                p.ended(),
                items,
                p.rate,
                p.eta.unwrap_or_default(),
                p.concurrency_limit,
                p.batch_size,
                p.retries,
                p.splits
            );
            if p.finished {
                break;
            }
        }
    });

    let intake = running.intake();
    for i in 0..items {
        intake.push(Item::new(i, i, i)).await?;
    }
    drop(intake);
    let report = running.finish().await?;
    printer.abort();
    println!("\n{report}");
    for d in dead.snapshot() {
        println!(
            "dead letter: key {} after {} attempts: {}",
            d.item.key(),
            d.attempts,
            d.error
        );
    }
    println!(
        "the API applied {} items ({} requests)",
        api.stats().items_applied,
        api.stats().requests
    );
    Ok(())
}
