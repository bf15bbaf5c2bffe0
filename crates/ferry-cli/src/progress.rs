//! Progress display: an indicatif bar when stderr is a terminal, a plain log line every few
//! seconds otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use ferry_core::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Follows `progress` on a task of its own until the run's last snapshot.
pub(crate) fn spawn(progress: watch::Receiver<Progress>, total: u64) -> JoinHandle<()> {
    tokio::spawn(follow(progress, Some(total)))
}

/// Follows `progress` until the run's last snapshot; `total` falls back to the engine's.
pub(crate) async fn follow(mut progress: watch::Receiver<Progress>, total: Option<u64>) {
    {
        let total = total.or(progress.borrow().total).unwrap_or(0);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = if total > 0 {
                ProgressBar::new(total)
            } else {
                ProgressBar::no_length()
            };
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {per_sec:>10} eta {eta:>4} | {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let mut ticker = tokio::time::interval(if bar.is_some() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        });
        // The first tick fires at once; skip it so logs start with real progress.
        ticker.tick().await;
        loop {
            // Wake on the tick, or at once when the run finishes (not up to a tick later:
            // without a terminal the tick is 5 s, and the run waits for this task).
            let ticked = tokio::select! {
                _ = ticker.tick() => true,
                changed = progress.changed() => {
                    if changed.is_err() {
                        if let Some(bar) = bar {
                            bar.finish_and_clear();
                        }
                        return;
                    }
                    false
                }
            };
            if !ticked && !progress.borrow_and_update().finished {
                continue;
            }
            let p = progress.borrow_and_update().clone();
            let msg = format!(
                "in flight {} | concurrency {} batch {} | retries {} splits {} dead {}",
                p.in_flight,
                p.concurrency_limit,
                p.batch_size,
                p.retries,
                p.splits,
                p.dead_lettered
            );
            match &bar {
                Some(bar) => {
                    bar.set_position(p.ended());
                    bar.set_message(msg);
                }
                None if !p.finished => eprintln!(
                    "progress: {}/{} ({:.0} items/s, eta {:.0?}) {msg}",
                    p.ended(),
                    if total > 0 {
                        total.to_string()
                    } else {
                        "?".into()
                    },
                    p.rate,
                    p.eta.unwrap_or_default()
                ),
                None => {}
            }
            if p.finished {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                return;
            }
        }
    }
}
