//! What a handler says about a batch, and what the engine reports about each item.
//!
//! The handler classifies; the engine decides. A handler maps its world (HTTP status codes,
//! GraphQL errors, database errors) onto this small enum; the engine, with its
//! [`RetryPolicy`](crate::RetryPolicy), turns it into an action the ledger accounts for:
//! settle, retry after a backoff, split, or dead-letter.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::item::Batch;

/// A boxed, sendable future borrowing for `'a`; what [`Handler::call`] returns.
pub type BoxFuture<'a, O> = Pin<Box<dyn Future<Output = O> + Send + 'a>>;

/// The result of one handler call for a whole batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome<R> {
    /// The call went through; one outcome per item, in the batch's order.
    /// A handler that returns fewer outcomes than items has those extra items dead-lettered
    /// with an error saying so (a handler bug must not lose items).
    Done(Vec<ItemOutcome<R>>),
    /// The whole batch failed for a reason that may pass: a 5xx, a lost connection. (A 429
    /// or 503 is the target asking for time: [`Throttled`](Self::Throttled).)
    /// `after` is the server's `Retry-After` hint; when present it pauses every dispatch to
    /// this target (the shared gate), not only this batch.
    Retry {
        /// Server-provided delay before any further request.
        after: Option<Duration>,
        /// Human-readable reason, kept in dead letters.
        reason: String,
    },
    /// The target asked for time: a 429, a 503, a rate-limit or exhausted-budget error inside
    /// a 200 body. Back-pressure is not failure: the batch goes back whole after `after`
    /// (which also pauses every dispatch to this target, the shared gate), no item is charged
    /// an attempt, and none is ever dead-lettered for it (unless `dispatch.deadline` passes).
    /// The engine also learns the target's sustainable request rate from these answers and
    /// paces calls at it (see [`RateController`](crate::adaptive::RateController)).
    Throttled {
        /// When to come back: the server's `Retry-After` (or `retry_in_seconds`), if it said.
        after: Option<Duration>,
        /// Human-readable reason.
        reason: String,
    },
    /// One of the batch's items breaks it without being named (a batch-level error, a
    /// constraint violation). The engine splits it until the culprit stands alone; a single
    /// item that gets `Split` is dead-lettered with `reason`. The batch size is not changed.
    Split {
        /// Human-readable reason.
        reason: String,
    },
    /// The batch is too large for the target (413, 504, a server-side timeout). The engine
    /// splits it like `Split` *and* lowers the adaptive batch size.
    TooLarge {
        /// Human-readable reason.
        reason: String,
    },
    /// Every item in the batch failed for good (e.g. 401): all are dead-lettered.
    Fatal {
        /// Human-readable reason.
        reason: String,
    },
}

impl<R> BatchOutcome<R> {
    /// Every item succeeded with the given results (in the batch's order).
    pub fn ok(results: impl IntoIterator<Item = R>) -> Self {
        BatchOutcome::Done(results.into_iter().map(ItemOutcome::Ok).collect())
    }

    /// Retry the batch, optionally after a server-given delay.
    pub fn retry(after: Option<Duration>, reason: impl Into<String>) -> Self {
        BatchOutcome::Retry {
            after,
            reason: reason.into(),
        }
    }

    /// The target asked for time (429, 503, a rate-limit error in the body): come back after
    /// `after`, at no cost to the items.
    pub fn throttled(after: Option<Duration>, reason: impl Into<String>) -> Self {
        BatchOutcome::Throttled {
            after,
            reason: reason.into(),
        }
    }

    /// Split the batch (too large, or an unnamed item broke it).
    pub fn split(reason: impl Into<String>) -> Self {
        BatchOutcome::Split {
            reason: reason.into(),
        }
    }

    /// Split the batch and lower the batch size (413, 504).
    pub fn too_large(reason: impl Into<String>) -> Self {
        BatchOutcome::TooLarge {
            reason: reason.into(),
        }
    }

    /// Dead-letter every item.
    pub fn fatal(reason: impl Into<String>) -> Self {
        BatchOutcome::Fatal {
            reason: reason.into(),
        }
    }
}

impl BatchOutcome<()> {
    /// Every item of a batch of `n` succeeded with no result value.
    pub fn success(n: usize) -> Self {
        BatchOutcome::Done(vec![ItemOutcome::Ok(()); n])
    }
}

/// The result of one handler call for one item.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome<R> {
    /// The item is done.
    Ok(R),
    /// The item failed for a reason that may pass; it is retried alone or with other
    /// retried items, after a backoff.
    Retry(String),
    /// The item failed for good (a validation error naming it); it is dead-lettered.
    Fatal(String),
}

/// The code a batch handler runs: sends one batch somewhere and classifies what came back.
///
/// Implemented for any `Fn(&Batch<T>) -> BoxFuture<BatchOutcome<R>>` via [`handler_fn`].
/// A handler must not panic on bad input; if it does, the engine catches the panic and treats
/// it as [`BatchOutcome::Split`] so a poison item is isolated and dead-lettered.
pub trait Handler<T, R>: Send + Sync + 'static {
    /// Sends `batch` and classifies the outcome. The engine applies the per-attempt timeout
    /// around this future.
    fn call<'a>(&'a self, batch: &'a Batch<T>) -> BoxFuture<'a, BatchOutcome<R>>;
}

/// A [`Handler`] made from a closure; see [`handler_fn`].
#[derive(Debug, Clone)]
pub struct HandlerFn<F>(F);

/// Makes a [`Handler`] from a closure returning a boxed future:
///
/// ```
/// use ferry_core::{handler_fn, BatchOutcome};
/// let h = handler_fn(|batch: &ferry_core::Batch<u32>| {
///     let sum: u32 = batch.payloads().sum();
///     Box::pin(async move { BatchOutcome::ok(vec![sum; 0]) })
/// });
/// # let _ = h;
/// ```
pub fn handler_fn<T, R, F>(f: F) -> HandlerFn<F>
where
    F: for<'a> Fn(&'a Batch<T>) -> BoxFuture<'a, BatchOutcome<R>> + Send + Sync + 'static,
{
    HandlerFn(f)
}

impl<T, R, F> Handler<T, R> for HandlerFn<F>
where
    F: for<'a> Fn(&'a Batch<T>) -> BoxFuture<'a, BatchOutcome<R>> + Send + Sync + 'static,
{
    fn call<'a>(&'a self, batch: &'a Batch<T>) -> BoxFuture<'a, BatchOutcome<R>> {
        (self.0)(batch)
    }
}

impl<T, R, H: Handler<T, R> + ?Sized> Handler<T, R> for std::sync::Arc<H> {
    fn call<'a>(&'a self, batch: &'a Batch<T>) -> BoxFuture<'a, BatchOutcome<R>> {
        (**self).call(batch)
    }
}

impl<T: 'static, R: 'static> Handler<T, R> for Box<dyn Handler<T, R>> {
    fn call<'a>(&'a self, batch: &'a Batch<T>) -> BoxFuture<'a, BatchOutcome<R>> {
        (**self).call(batch)
    }
}
