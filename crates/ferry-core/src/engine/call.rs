//! One handler call as a task of its own: the per-attempt timeout, panics and abandonment at
//! shutdown all become a [`CallOutcome`], and the batch always comes back with it, so no item
//! can be lost inside a task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::item::Batch;
use crate::outcome::{BatchOutcome, Handler, ItemOutcome};
use crate::policy::CallEnd;

/// What became of one handler call.
pub(super) enum CallOutcome<R> {
    /// The handler returned.
    Handler(BatchOutcome<R>),
    /// The per-attempt timeout passed first.
    TimedOut,
    /// The handler panicked with this message.
    Panicked(String),
    /// The shutdown grace ran out first.
    Abandoned,
}

impl<R> CallOutcome<R> {
    /// The outcome as the [`OutcomePolicy`](crate::policy::OutcomePolicy) sees it.
    pub(super) fn end(&self) -> CallEnd {
        match self {
            CallOutcome::Handler(BatchOutcome::Done(_)) => CallEnd::Done,
            CallOutcome::Handler(BatchOutcome::Retry { after, .. }) => {
                CallEnd::Retry { after: *after }
            }
            CallOutcome::Handler(BatchOutcome::Throttled { after, .. }) => {
                CallEnd::Throttled { after: *after }
            }
            CallOutcome::Handler(BatchOutcome::Split { .. }) => CallEnd::Split,
            CallOutcome::Handler(BatchOutcome::TooLarge { .. }) => CallEnd::TooLarge,
            CallOutcome::Handler(BatchOutcome::Fatal { .. }) => CallEnd::Fatal,
            CallOutcome::TimedOut => CallEnd::TimedOut,
            CallOutcome::Panicked(_) => CallEnd::Panicked,
            CallOutcome::Abandoned => CallEnd::Abandoned,
        }
    }

    /// The per-item outcomes of a `Done` call, or the reason kept in dead letters.
    pub(super) fn into_results(self, timeout: Duration) -> Result<Vec<ItemOutcome<R>>, String> {
        match self {
            CallOutcome::Handler(BatchOutcome::Done(results)) => Ok(results),
            CallOutcome::Handler(
                BatchOutcome::Retry { reason, .. }
                | BatchOutcome::Throttled { reason, .. }
                | BatchOutcome::Split { reason }
                | BatchOutcome::TooLarge { reason }
                | BatchOutcome::Fatal { reason },
            ) => Err(reason),
            CallOutcome::TimedOut => Err(format!("timed out after {timeout:?}")),
            CallOutcome::Panicked(msg) => Err(format!("handler panicked: {msg}")),
            CallOutcome::Abandoned => Err("abandoned at shutdown".to_owned()),
        }
    }
}

/// A finished call: the batch comes back with its outcome.
pub(super) struct CallDone<T, R> {
    pub(super) batch: Batch<T>,
    pub(super) outcome: CallOutcome<R>,
    pub(super) latency: Duration,
}

/// Calls `handler` with `batch` under `timeout`, catching panics, until `abandon` fires.
pub(super) async fn call<T, R, H>(
    handler: Arc<H>,
    batch: Batch<T>,
    timeout: Duration,
    abandon: CancellationToken,
) -> CallDone<T, R>
where
    H: Handler<T, R>,
{
    let started = Instant::now();
    let outcome = {
        let call = AssertUnwindSafe(handler.call(&batch)).catch_unwind();
        tokio::select! {
            r = tokio::time::timeout(timeout, call) => match r {
                Ok(Ok(outcome)) => CallOutcome::Handler(outcome),
                Ok(Err(panic)) => CallOutcome::Panicked(panic_message(&panic)),
                Err(_) => CallOutcome::TimedOut,
            },
            _ = abandon.cancelled() => CallOutcome::Abandoned,
        }
    };
    CallDone {
        batch,
        outcome,
        latency: started.elapsed(),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
