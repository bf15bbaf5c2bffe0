//! The engine's public handles: building ([`Engine`]), feeding ([`Intake`]), watching and
//! finishing ([`Running`]) a run. The channels between producers and the event loop are
//! `intake`'s; the loop itself is `core`.

use std::sync::Arc;

use futures_core::Stream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::EngineConfig;
use super::core::Core;
use super::intake::{self, Intake};
use super::report::Report;
use super::settled::Settled;
use crate::adaptive::RateConfig;
use crate::deadletter::{DeadLetter, DeadLetterSink};
use crate::dispatch::Throttle;
use crate::error::Error;
use crate::item::Item;
use crate::outcome::{BoxFuture, Handler};
use crate::progress::Progress;

/// Logs dead letters (key and error) when no sink was configured.
struct LogDeadLetters;

impl<T: Send + Sync + 'static> DeadLetterSink<T> for LogDeadLetters {
    fn write<'a>(&'a self, letters: &'a [DeadLetter<T>]) -> BoxFuture<'a, Result<(), Error>> {
        for l in letters {
            tracing::warn!(key = %l.item.key(), attempts = l.attempts, error = %l.error, "dead letter");
        }
        Box::pin(async { Ok(()) })
    }

    fn describe(&self) -> String {
        "log (no dead-letter sink configured)".to_owned()
    }
}

/// A configured engine, ready to [`start`](Engine::start).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ferry_core::Error> {
/// use ferry_core::{handler_fn, BatchOutcome, Engine, EngineConfig, Item};
/// let handler = handler_fn(|batch: &ferry_core::Batch<u64>| {
///     let doubled: Vec<u64> = batch.payloads().map(|x| x * 2).collect();
///     Box::pin(async move { BatchOutcome::ok(doubled) })
/// });
/// let engine = Engine::new(EngineConfig::standard(), handler)?;
/// let report = engine.run_iter((0..1000u64).map(|i| Item::new(i, i, i))).await?;
/// assert_eq!(report.progress.succeeded, 1000);
/// # Ok(()) }
/// ```
pub struct Engine<T, R, H> {
    config: EngineConfig,
    handler: Arc<H>,
    dead_letters: Arc<dyn DeadLetterSink<T>>,
    throttle: Option<Arc<Throttle>>,
    cancel: CancellationToken,
    intake_capacity: usize,
    settled_capacity: Option<usize>,
    total: Option<u64>,
    _result: std::marker::PhantomData<fn() -> R>,
}

impl<T, R, H> Engine<T, R, H>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    H: Handler<T, R>,
{
    /// Validates `config` and builds an engine around `handler`.
    pub fn new(config: EngineConfig, handler: H) -> Result<Self, Error> {
        let config = config.validate()?;
        Ok(Engine {
            config,
            handler: Arc::new(handler),
            dead_letters: Arc::new(LogDeadLetters),
            throttle: None,
            cancel: CancellationToken::new(),
            intake_capacity: 1024,
            settled_capacity: None,
            total: None,
            _result: std::marker::PhantomData,
        })
    }

    /// Where dead letters go (default: logged through `tracing`, key and error only).
    pub fn dead_letters(mut self, sink: impl DeadLetterSink<T>) -> Self {
        self.dead_letters = Arc::new(sink);
        self
    }

    /// Shares rate limits and the `Retry-After` gate with other engines talking to the same
    /// target (default: a throttle of this engine's own, from `config.dispatch.rate`).
    pub fn throttle(mut self, throttle: Arc<Throttle>) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// A token that cancels the run (default: a fresh token, see [`Running::cancel`]).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Capacity of each priority's intake channel (default 1,024 items, counted one by one
    /// whether they were pushed alone or in a run). Producers wait when it is full and the
    /// engine's buffer or memory budget is too.
    pub fn intake_capacity(mut self, n: usize) -> Self {
        self.intake_capacity = n.max(1);
        self
    }

    /// Emit [`Settled`] outcomes, one `Vec` per settled batch, on a channel of this many
    /// batches (default: not emitted). The engine waits when the channel is full, so a slow
    /// consumer (a checkpoint, a store) back-pressures the run; dropping the receiver stops
    /// emission.
    pub fn emit_settled(mut self, capacity: usize) -> Self {
        self.settled_capacity = Some(capacity.max(1));
        self
    }

    /// The number of items expected, for the ETA (default unknown).
    pub fn total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }

    /// Spawns the engine's task on the current tokio runtime.
    pub fn start(self) -> Running<T, R> {
        let (intake, arrivals) = intake::channels(self.intake_capacity);
        let (settled_tx, settled_rx) = match self.settled_capacity {
            Some(cap) => {
                let (tx, rx) = mpsc::channel(cap);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let throttle = self.throttle.unwrap_or_else(|| {
            let (rate, max) = (self.config.dispatch.rate, self.config.max_items());
            if self.config.dispatch.learn_rate {
                Throttle::learning(rate, max, RateConfig::default())
            } else {
                Throttle::new(rate, max)
            }
        });
        let core = Core::new(
            self.config,
            self.handler,
            self.dead_letters,
            throttle,
            arrivals,
            settled_tx,
            self.cancel.clone(),
            self.total,
        );
        let progress = core.subscribe();
        let task = tokio::spawn(core.run());
        Running {
            intake,
            settled: settled_rx,
            progress,
            cancel: self.cancel,
            task,
        }
    }

    /// Runs the engine over a stream of items to its end and returns the report (see
    /// [`run_iter`](Self::run_iter) for items already in memory).
    pub async fn run<S>(self, items: S) -> Result<Report, Error>
    where
        S: Stream<Item = Item<T>> + Send,
    {
        let running = self.start();
        let intake = running.intake();
        let mut items = std::pin::pin!(items);
        while let Some(item) = std::future::poll_fn(|cx| items.as_mut().poll_next(cx)).await {
            if intake.push(item).await.is_err() {
                break;
            }
        }
        drop(intake);
        running.finish().await
    }

    /// Runs the engine over the items of an iterator to its end and returns the report:
    /// [`run`](Self::run) for a source that is already in memory.
    pub async fn run_iter<I>(self, items: I) -> Result<Report, Error>
    where
        I: IntoIterator<Item = Item<T>>,
        I::IntoIter: Send,
    {
        self.run(futures_util::stream::iter(items)).await
    }
}

/// A running engine.
pub struct Running<T, R> {
    intake: Intake<T>,
    settled: Option<mpsc::Receiver<Vec<Settled<T, R>>>>,
    progress: watch::Receiver<Progress>,
    cancel: CancellationToken,
    task: JoinHandle<Result<Report, Error>>,
}

impl<T, R> Running<T, R> {
    /// A producer handle.
    pub fn intake(&self) -> Intake<T> {
        self.intake.clone()
    }

    /// Progress snapshots; `changed()` wakes on every update.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Takes the settled-outcome receiver (present if [`Engine::emit_settled`] was set).
    pub fn take_settled(&mut self) -> Option<mpsc::Receiver<Vec<Settled<T, R>>>> {
        self.settled.take()
    }

    /// Stops intake at once: waiting items are cancelled, in-flight calls get the
    /// configured grace to finish. Every item is still accounted for in the report.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The run's cancellation token.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Closes this handle's intake and waits for the run to end: when every other
    /// [`Intake`] is dropped too, the engine drains everything it holds and stops.
    pub async fn finish(self) -> Result<Report, Error> {
        let Running { intake, task, .. } = self;
        drop(intake);
        match task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Task(e.to_string())),
        }
    }
}
