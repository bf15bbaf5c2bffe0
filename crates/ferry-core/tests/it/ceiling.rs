//! Acceptance: with adaptive concurrency and batch size, and told neither the number of
//! slots nor the size limit, Ferry reaches at least 85 % of the simulated API's ceiling (and,
//! as a check on the simulator and the measurement, never more than 100 %).

use std::num::NonZeroUsize;
use std::time::Duration;

use ferry_core::{Engine, EngineConfig, FlushPolicy, Item};

use ferry_core::testing::{
    SimulatedApi, SimulatedApiConfig, SimulatedApiHandler, SimulatedApiStats,
};

/// Runs `items` items through the simulator on a paused clock; returns achieved items/s.
fn run(cfg: SimulatedApiConfig, items: u64) -> (f64, ferry_core::Report, SimulatedApiStats) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let api = SimulatedApi::new(cfg);
        let mut config = EngineConfig::standard();
        // Generic caps only: nothing about the simulator's slots or size limit.
        config.flush = FlushPolicy::new().max_items(NonZeroUsize::new(1000).unwrap());
        config.dispatch.timeout = Duration::from_secs(60);
        config.seed = Some(7);
        let engine = Engine::new(config, SimulatedApiHandler(api.clone()))
            .unwrap()
            .total(items);
        let running = engine.start();
        let mut progress = running.progress();
        let trace = tokio::spawn(async move {
            let mut line = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let p = progress.borrow_and_update().clone();
                line.push(format!(
                    "{}s:c{}/b{}",
                    p.elapsed.as_secs(),
                    p.concurrency_limit,
                    p.batch_size
                ));
                if p.finished || line.len() > 200 {
                    break;
                }
            }
            line
        });
        let intake = running.intake();
        for i in 0..items {
            intake.push(Item::new(i, i, i)).await.unwrap();
        }
        drop(intake);
        let report = running.finish().await.unwrap();
        println!("trace: {:?}", trace.await.ok());
        assert_eq!(report.progress.succeeded, items, "{report}");
        let stats = api.stats();
        (items as f64 / report.elapsed.as_secs_f64(), report, stats)
    })
}

fn check(name: &str, cfg: SimulatedApiConfig, items: u64) {
    let ceiling = cfg.ceiling();
    let (achieved, report, stats) = run(cfg, items);
    let share = achieved / ceiling;
    println!(
        "{name}: ceiling {ceiling:.0} items/s, ferry {achieved:.0} items/s = {:.1}% \
         (settled on concurrency {}, batch size {}; {} requests, {} x 429, {} server timeouts)",
        share * 100.0,
        report.final_concurrency,
        report.final_batch_size,
        stats.requests,
        stats.rejected_429,
        stats.timeouts,
    );
    println!("{report}");
    assert!(
        share >= 0.85,
        "{name}: {achieved:.0} items/s is {:.1}% of the ceiling {ceiling:.0}",
        share * 100.0
    );
    // Nobody beats the ceiling: above it, the simulator or the measurement is wrong.
    assert!(
        share <= 1.0,
        "{name}: {achieved:.0} items/s is above the ceiling {ceiling:.0}"
    );
    assert_eq!(
        stats.items_applied, items,
        "every item applied exactly once (no duplicate applies)"
    );
}

#[test]
fn reaches_85_percent_of_a_slot_bound_ceiling() {
    // 8 slots, 200 ms + 5 ms/item, requests over 100 items time out after 30 s.
    // Ceiling: 8 × 100 / 0.7 s = 1,143 items/s; the rate limit (50 req/s) does not bind.
    let cfg = SimulatedApiConfig {
        slots: 8,
        base: Duration::from_millis(200),
        per_item: Duration::from_millis(5),
        size_limit: 100,
        server_timeout: Duration::from_secs(30),
        rate_limit: 50,
        poison_every: None,
    };
    check("slot-bound", cfg, 600_000);
}

#[test]
fn reaches_85_percent_of_a_rate_bound_ceiling() {
    // 16 slots, 100 ms + 2 ms/item, over 50 items time out; 20 requests/s admitted.
    // Ceiling: min(16 × 50 / 0.2 s = 4,000, 20 × 50 = 1,000) = 1,000 items/s.
    let cfg = SimulatedApiConfig {
        slots: 16,
        base: Duration::from_millis(100),
        per_item: Duration::from_millis(2),
        size_limit: 50,
        server_timeout: Duration::from_secs(30),
        rate_limit: 20,
        poison_every: None,
    };
    check("rate-bound", cfg, 600_000);
}
