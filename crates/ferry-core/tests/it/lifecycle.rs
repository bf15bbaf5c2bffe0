//! Cancellation, graceful shutdown, memory back-pressure, panics, the shared `Retry-After`
//! gate and the JSON Lines dead-letter sink, each against a real engine on a paused clock.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::{
    handler_fn, Batch, BatchOutcome, BatchSizing, Concurrency, Engine, EngineConfig, FlushPolicy,
    Item, JsonlDeadLetters, MemoryLimits, Settled, SplitStrategy, Throttle,
};
use tokio::time::Instant;

fn slow_handler(ms: u64) -> impl ferry_core::Handler<u64, ()> {
    handler_fn(move |batch: &Batch<u64>| {
        let n = batch.len();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            BatchOutcome::success(n)
        })
    })
}

#[tokio::test(start_paused = true)]
async fn cancel_accounts_for_every_item() {
    let mut c = EngineConfig::standard();
    c.shutdown_grace = Duration::from_millis(50);
    let mut running = Engine::new(c, slow_handler(1000))
        .unwrap()
        .emit_settled(64)
        .start();
    let mut rx = running.take_settled().unwrap();
    let intake = running.intake();
    for i in 0..5000u64 {
        intake.push(Item::new(i, i, i)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(running.progress().borrow().executing > 0, "calls in flight");
    let cancelled_at = Instant::now();
    running.cancel();
    // Intake refuses new items once the engine has stopped taking them.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(intake.push(Item::new(9999u64, 9999, 9999)).await.is_err());
    drop(intake);
    let report = running.finish().await.unwrap();
    // The calls in flight (1 s each, started at 1 s) were abandoned when the 50 ms grace
    // ran out, not waited for.
    let stopped_after = cancelled_at.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(50) && stopped_after < Duration::from_millis(100),
        "the run ended {stopped_after:?} after the cancel, with a grace of 50 ms"
    );
    let p = &report.progress;
    assert_eq!(p.accepted, 5000);
    assert!(p.succeeded > 0, "some calls finished before the cancel");
    assert!(p.cancelled > 0);
    assert_eq!(p.succeeded + p.cancelled, 5000, "{report}");
    let mut keys = std::collections::HashSet::new();
    while let Some(batch) = rx.recv().await {
        for s in batch {
            assert!(keys.insert(s.key().clone()), "settled twice");
        }
    }
    assert_eq!(keys.len(), 5000);
}

#[tokio::test(start_paused = true)]
async fn in_flight_calls_finish_within_the_grace() {
    let mut c = EngineConfig::standard();
    c.shutdown_grace = Duration::from_secs(10);
    c.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(4).unwrap());
    let running = Engine::new(c, slow_handler(2000)).unwrap().start();
    let intake = running.intake();
    for i in 0..64u64 {
        intake.push(Item::new(i, i, i)).await.unwrap();
    }
    drop(intake);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let executing = running.progress().borrow().executing;
    assert!(executing > 0, "calls in flight");
    running.cancel();
    let report = running.finish().await.unwrap();
    // The calls in flight at the cancel finished (grace 10 s > 2 s); the rest was cancelled.
    assert_eq!(report.progress.succeeded, executing);
    assert_eq!(report.progress.cancelled, 64 - executing);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "the calls ran to their end"
    );
}

#[tokio::test(start_paused = true)]
async fn calls_outlasting_the_grace_are_abandoned_and_their_items_cancelled() {
    let mut c = EngineConfig::standard();
    c.shutdown_grace = Duration::from_secs(1);
    c.sizing = ferry_core::BatchSizing::Fixed;
    c.flush = FlushPolicy::new().max_items(NonZeroUsize::new(10).unwrap());
    c.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(1).unwrap());
    let running = Engine::new(c, slow_handler(5000)).unwrap().start();
    let intake = running.intake();
    for i in 0..10u64 {
        intake.push(Item::new(i, i, i)).await.unwrap();
    }
    drop(intake);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.progress().borrow().executing, 10);
    let cancelled_at = Instant::now();
    running.cancel();
    let report = running.finish().await.unwrap();
    // The 5 s call is abandoned when the 1 s grace runs out: its items are cancelled.
    assert_eq!(cancelled_at.elapsed(), Duration::from_secs(1));
    assert_eq!(report.progress.cancelled, 10);
    assert_eq!(report.progress.succeeded, 0);
}

#[tokio::test(start_paused = true)]
async fn end_of_input_drains_everything() {
    let mut c = EngineConfig::standard();
    c.flush = FlushPolicy::new()
        .max_items(NonZeroUsize::new(100).unwrap())
        .max_wait(ferry_core::Priority::Medium, Duration::from_secs(3600))
        .max_wait(ferry_core::Priority::Low, Duration::from_secs(3600));
    let report = Engine::new(c, slow_handler(10))
        .unwrap()
        .run_iter((0..250u64).map(|i| Item::new(i, i, i)))
        .await
        .unwrap();
    // The last 50 items leave at end of input, not after an hour.
    assert_eq!(report.progress.succeeded, 250);
    assert!(report.elapsed < Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn producers_wait_over_the_hard_memory_limit() {
    let mut c = EngineConfig::standard();
    c.flush = FlushPolicy::new()
        .max_items(NonZeroUsize::new(10).unwrap())
        .max_bytes(NonZeroUsize::new(1 << 20).unwrap())
        .memory(MemoryLimits {
            high_watermark: 1 << 20,
            hard_limit: 2 << 20,
        });
    c.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(1).unwrap());
    let running = Engine::new(c, slow_handler(1000))
        .unwrap()
        .intake_capacity(1)
        .start();
    let intake = running.intake();
    // 100 KiB items: the engine may hold about 2 MiB, i.e. some 20 items plus a channel slot.
    let producer = tokio::spawn(async move {
        let mut pushed_by = Vec::new();
        for i in 0..100u64 {
            intake
                .push(Item::new(i, i, i).with_bytes(100 << 10))
                .await
                .unwrap();
            pushed_by.push(Instant::now());
        }
        pushed_by
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let progress = running.progress().borrow().clone();
    assert!(
        progress.accepted <= 22,
        "accepted {} items over the hard limit",
        progress.accepted
    );
    let pushed_by = producer.await.unwrap();
    let report = running.finish().await.unwrap();
    assert_eq!(report.progress.succeeded, 100, "nothing dropped");
    assert!(
        pushed_by[99] > pushed_by[0] + Duration::from_secs(5),
        "the producer was held back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_isolates_the_item_that_panics() {
    let handler = handler_fn(|batch: &Batch<u64>| {
        let poison = batch.payloads().any(|&k| k == 13);
        let n = batch.len();
        Box::pin(async move {
            if poison {
                panic!("cannot handle 13");
            }
            BatchOutcome::success(n)
        })
    });
    let dead = ferry_core::MemoryDeadLetters::new();
    let report = Engine::new(EngineConfig::standard(), handler)
        .unwrap()
        .dead_letters(dead.clone())
        .run_iter((0..100u64).map(|i| Item::new(i, i, i)))
        .await
        .unwrap();
    assert_eq!(report.progress.succeeded, 99);
    let letters = dead.snapshot();
    assert_eq!(letters.len(), 1);
    assert_eq!(*letters[0].item.payload(), 13);
    assert!(
        letters[0].error.contains("cannot handle 13"),
        "{}",
        letters[0].error
    );
}

/// Runs 2,300 items in batches of 23, 4 calls at once, against a target that fails any
/// batch holding item 500 or 1,500 as a whole, naming no item; returns the dead letters'
/// payloads, the items that succeeded, and the sizes of every call made.
async fn run_with_unnamed_bad_items(split: SplitStrategy) -> (Vec<u64>, u64, Vec<usize>) {
    let calls: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = Arc::clone(&calls);
    let handler = handler_fn(move |batch: &Batch<u64>| {
        let bad = batch.payloads().any(|&k| k == 500 || k == 1500);
        let n = batch.len();
        seen.lock().unwrap().push(n);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if bad {
                BatchOutcome::split("400: invalid value somewhere in the batch")
            } else {
                BatchOutcome::success(n)
            }
        })
    });
    let mut cfg = EngineConfig::standard();
    cfg.flush = FlushPolicy::new().max_items(NonZeroUsize::new(23).unwrap());
    cfg.sizing = BatchSizing::Fixed;
    cfg.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(4).unwrap());
    cfg.dispatch.split = split;
    let dead = ferry_core::MemoryDeadLetters::new();
    let report = Engine::new(cfg, handler)
        .unwrap()
        .dead_letters(dead.clone())
        .run_iter((0..2300u64).map(|i| Item::new(i, i, i)))
        .await
        .unwrap();
    let mut letters: Vec<u64> = dead.snapshot().iter().map(|l| *l.item.payload()).collect();
    letters.sort_unstable();
    let sizes = calls.lock().unwrap().clone();
    (letters, report.progress.succeeded, sizes)
}

#[tokio::test(start_paused = true)]
async fn an_unnamed_bad_item_is_found_with_few_calls_all_but_the_last_full() {
    let (letters, succeeded, sizes) = run_with_unnamed_bad_items(SplitStrategy::Bisect).await;
    assert_eq!(
        letters,
        vec![500, 1500],
        "exactly the bad items, nothing else"
    );
    assert_eq!(succeeded, 2298);
    // 100 calls without bad items; each search costs the failed call itself and one call
    // per step (a quarter of 23 suspects tested at a time: about 6 steps), and its test
    // calls are topped up to 23 with fresh items.
    assert!(sizes.len() <= 100 + 2 * 7, "{} calls", sizes.len());
    let small = sizes.iter().filter(|&&n| n < 23).count();
    assert!(
        small <= 2 * 3,
        "{small} calls under the batch size: {sizes:?}"
    );

    // Plain halving (a ladder of halves) on the same work sends both halves each time.
    let (letters, succeeded, halved) =
        run_with_unnamed_bad_items(SplitStrategy::ladder(&[12, 6, 3, 2, 1]).unwrap()).await;
    assert_eq!((letters, succeeded), (vec![500, 1500], 2298));
    assert!(
        halved.len() > sizes.len(),
        "halving {} calls, the search {}",
        halved.len(),
        sizes.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_searches_for_unnamed_bad_items_accounts_for_every_item() {
    // One bad item in 50: several searches are under way, with halves held aside, when the
    // run is cancelled; the calls in flight finish within the grace.
    for cancel_after in [150u64, 250, 350, 450, 550] {
        let handler = handler_fn(|batch: &Batch<u64>| {
            let bad = batch.payloads().any(|&k| k % 50 == 7);
            let n = batch.len();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if bad {
                    BatchOutcome::split("unnamed")
                } else {
                    BatchOutcome::success(n)
                }
            })
        });
        let mut cfg = EngineConfig::standard();
        cfg.flush = FlushPolicy::new().max_items(NonZeroUsize::new(16).unwrap());
        cfg.sizing = BatchSizing::Fixed;
        cfg.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(4).unwrap());
        cfg.shutdown_grace = Duration::from_secs(10);
        let dead = ferry_core::MemoryDeadLetters::new();
        let mut running = Engine::new(cfg, handler)
            .unwrap()
            .dead_letters(dead.clone())
            .emit_settled(64)
            .start();
        let mut rx = running.take_settled().unwrap();
        let intake = running.intake();
        for i in 0..400u64 {
            intake.push(Item::new(i, i, i)).await.unwrap();
        }
        drop(intake);
        tokio::time::sleep(Duration::from_millis(cancel_after)).await;
        running.cancel();
        let report = running.finish().await.unwrap();
        let p = &report.progress;
        assert_eq!(p.succeeded + p.dead_lettered + p.cancelled, 400, "{report}");
        assert!(p.cancelled > 0, "{report}");
        assert!(dead.snapshot().iter().all(|l| l.item.payload() % 50 == 7));
        let mut keys = std::collections::HashSet::new();
        while let Some(batch) = rx.recv().await {
            for s in batch {
                assert!(keys.insert(s.key().clone()), "settled twice");
            }
        }
        assert_eq!(keys.len(), 400, "cancelled after {cancel_after} ms");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_every_engine_sharing_the_throttle() {
    // Two engines share one throttle; engine A's target answers 429 with Retry-After: 10 s
    // once. Engine B must not start a call during that pause.
    let throttle = Throttle::unlimited();
    let answered_429 = Arc::new(AtomicUsize::new(0));
    let a429 = Arc::clone(&answered_429);
    let handler_a = handler_fn(move |batch: &Batch<u64>| {
        let n = batch.len();
        let first = a429.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            if first {
                BatchOutcome::throttled(Some(Duration::from_secs(10)), "429")
            } else {
                BatchOutcome::success(n)
            }
        })
    });
    let b_calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let bc = Arc::clone(&b_calls);
    let handler_b = handler_fn(move |batch: &Batch<u64>| {
        bc.lock().unwrap().push(Instant::now());
        let n = batch.len();
        Box::pin(async move { BatchOutcome::success(n) })
    });
    let start = Instant::now();
    let a = Engine::new(EngineConfig::standard(), handler_a)
        .unwrap()
        .throttle(Arc::clone(&throttle))
        .start();
    let ia = a.intake();
    ia.push(Item::new(0u64, 0, 0)).await.unwrap();
    drop(ia);
    tokio::time::sleep(Duration::from_secs(2)).await; // A's first call has been answered 429.
    let b = Engine::new(EngineConfig::standard(), handler_b)
        .unwrap()
        .throttle(Arc::clone(&throttle))
        .start();
    let ib = b.intake();
    ib.push(Item::new(1u64, 1, 1)).await.unwrap();
    drop(ib);
    let ra = a.finish().await.unwrap();
    let rb = b.finish().await.unwrap();
    assert_eq!(ra.progress.succeeded, 1);
    assert_eq!(rb.progress.succeeded, 1);
    let first_b = b_calls.lock().unwrap()[0];
    assert!(
        first_b >= start + Duration::from_secs(10),
        "B called {:?} after start, inside A's Retry-After",
        first_b - start
    );
}

#[tokio::test]
async fn dead_letters_reach_the_jsonl_file_with_error_and_attempts() {
    let dir = std::env::temp_dir().join(format!("ferry-it-dl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dead.jsonl");
    let _ = std::fs::remove_file(&path);
    let handler = handler_fn(|batch: &Batch<u64>| {
        let out: Vec<_> = batch
            .payloads()
            .map(|&k| {
                if k % 10 == 0 {
                    ferry_core::ItemOutcome::Fatal(format!("row {k} rejected"))
                } else {
                    ferry_core::ItemOutcome::Ok(())
                }
            })
            .collect();
        Box::pin(async move { BatchOutcome::Done(out) })
    });
    let mut running = Engine::new(EngineConfig::standard(), handler)
        .unwrap()
        .dead_letters(JsonlDeadLetters::new(&path))
        .emit_settled(8)
        .start();
    let mut rx = running.take_settled().unwrap();
    let intake = running.intake();
    for i in 0..100u64 {
        intake.push(Item::new(i, i, i)).await.unwrap();
    }
    drop(intake);
    let report = running.finish().await.unwrap();
    let mut dead_settled = 0;
    while let Some(batch) = rx.recv().await {
        dead_settled += batch
            .iter()
            .filter(|s| matches!(s, Settled::DeadLettered(_)))
            .count();
    }
    assert_eq!(report.progress.dead_lettered, 10);
    assert_eq!(dead_settled, 10);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    for l in &lines {
        let k = l["payload"].as_u64().unwrap();
        assert_eq!(k % 10, 0);
        assert_eq!(l["error"], format!("row {k} rejected"));
        assert_eq!(l["attempts"], 1);
        assert!(l["dead_at"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(report.dead_letters, path.display().to_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs pushed in bulk, through an intake of 7 items per priority: every item ends exactly
/// once, the report counts them, and high items that arrive while a backlog waits board
/// before it.
#[tokio::test(start_paused = true)]
async fn runs_pushed_in_bulk_end_exactly_once_and_high_items_board_first() {
    use ferry_core::{BatchSizing, Priority};
    let mut c = EngineConfig::standard();
    c.sizing = BatchSizing::Fixed;
    c.flush = FlushPolicy::new().max_items(NonZeroUsize::new(10).unwrap());
    c.dispatch.concurrency = Concurrency::Fixed(NonZeroUsize::new(1).unwrap());
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&order);
    let handler = handler_fn(move |batch: &Batch<u64>| {
        seen.lock().unwrap().extend(batch.payloads().copied());
        let n = batch.len();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            BatchOutcome::success(n)
        })
    });
    let mut running = Engine::new(c, handler)
        .unwrap()
        .intake_capacity(7)
        .emit_settled(1024)
        .start();
    let mut rx = running.take_settled().unwrap();
    let intake = running.intake();
    let item = |i: u64, p: Priority| Item::new(i, i, i).with_priority(p);
    intake
        .push_many((0..3000).map(|i| item(i, Priority::Medium)))
        .await
        .unwrap();
    intake
        .push_many((3000..3050).map(|i| item(i, Priority::High)))
        .await
        .unwrap();
    intake.push(item(3050, Priority::Low)).await.unwrap();
    intake
        .push_many((3051..5000).map(|i| item(i, Priority::Low)))
        .await
        .unwrap();
    drop(intake);
    let report = running.finish().await.unwrap();
    let p = &report.progress;
    assert_eq!(
        (p.accepted, p.succeeded, p.in_flight),
        (5000, 5000, 0),
        "{report}"
    );
    let mut keys = std::collections::HashSet::new();
    while let Some(batch) = rx.recv().await {
        for s in batch {
            assert!(keys.insert(s.key().clone()), "{} settled twice", s.key());
        }
    }
    assert_eq!(keys.len(), 5000);
    // The producer waited for room after each few items, so the high run was pushed while
    // most of the medium backlog still waited: it boarded before that backlog.
    let order = order.lock().unwrap();
    let first_high = order.iter().position(|i| (3000..3050).contains(i)).unwrap();
    let last_medium = order.iter().rposition(|&i| i < 3000).unwrap();
    assert!(
        first_high < 3000 && first_high > 0,
        "first high at {first_high}"
    );
    assert!(
        last_medium < 3050,
        "the medium backlog left before the low items"
    );
    let lows: Vec<u64> = order.iter().copied().filter(|&i| i >= 3050).collect();
    assert_eq!(lows, (3050..5000).collect::<Vec<_>>(), "in push order");
}
