//! Ctrl-C (SIGINT) and SIGTERM for `ferry run` and `ferry demo`, and the exit codes.
//!
//! The first signal cancels the run's token: the library stops taking items, cancels what
//! waits, gives calls in flight the grace period, and the command prints its report and
//! exits 130. A second signal exits at once with 130, without a report: whatever the
//! checkpoint committed so far stays (it is written per confirmed batch), so `--resume`
//! re-sends at most the batches that were in flight.

use std::process::ExitCode;
use std::time::Duration;

use ferry_core::Report;
use tokio_util::sync::CancellationToken;

/// How a command ended, as the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: every item succeeded (or the command has no items).
    Ok,
    /// 3: some items were dead-lettered.
    DeadLetters,
    /// 130 (128 + SIGINT, as shells report it): interrupted by Ctrl-C or SIGTERM.
    Interrupted,
}

/// The exit code of an interrupted run, immediate or graceful.
const INTERRUPTED: u8 = 130;

impl Exit {
    /// The exit of a run that ended with `report`, `interrupted` or not.
    pub(crate) fn of(report: &Report, interrupted: bool) -> Exit {
        if interrupted {
            Exit::Interrupted
        } else if report.progress.dead_lettered > 0 {
            Exit::DeadLetters
        } else {
            Exit::Ok
        }
    }

    pub(crate) fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Ok => 0,
            Exit::DeadLetters => 3,
            Exit::Interrupted => INTERRUPTED,
        })
    }
}

/// Listens for Ctrl-C and SIGTERM from now on (the handlers are installed before this
/// returns, so no signal after it kills the process unreported): the first cancels
/// `shutdown`, the second exits the process at once with 130.
pub(crate) fn on_signals(shutdown: CancellationToken, grace: Duration) -> std::io::Result<()> {
    let mut signals = Signals::install()?;
    tokio::spawn(async move {
        signals.next().await;
        eprintln!(
            "\ninterrupted: taking no new items; calls in flight get up to {} to finish \
             (press Ctrl-C again to exit at once)",
            humantime::format_duration(grace)
        );
        shutdown.cancel();
        signals.next().await;
        eprintln!(
            "interrupted again: exiting at once; the checkpoint holds every batch confirmed so far"
        );
        std::process::exit(i32::from(INTERRUPTED));
    });
    Ok(())
}

/// Prints what an interrupted run did: the counts that add up to the items it was to send.
pub(crate) fn print_summary(report: &Report) {
    let p = &report.progress;
    let not_sent = p
        .total
        .map(|t| t.saturating_sub(p.succeeded + p.dead_lettered));
    println!(
        "interrupted: {} succeeded, {} dead-lettered, {} cancelled or not sent, of {}",
        p.succeeded,
        p.dead_lettered,
        not_sent.map_or_else(|| "the rest".to_owned(), |n| n.to_string()),
        p.total.map_or_else(|| "?".to_owned(), |t| t.to_string()),
    );
}

/// SIGINT and SIGTERM as one stream. Each keeps a pending delivery between `next` calls, so
/// a second Ctrl-C that comes while the first is handled is not lost.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal (on other platforms, the next Ctrl-C).
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
