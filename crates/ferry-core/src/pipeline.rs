//! Pipelines: stages joined by bounded channels, CPU-bound work off the async runtime.
//!
//! This module owns the plumbing between a source, any number of map stages and one
//! terminal (a sink, a collector, or a running engine's [`Intake`]). Items travel in
//! *chunks* (`Vec<T>`) so that per-item channel and task overhead is paid once per chunk.
//! Every channel is bounded, so a slow stage back-pressures everything upstream of it and
//! memory stays flat however long the input is.
//!
//! [`Flow::map_blocking`] runs its function on tokio's blocking pool: while a chunk is
//! parsed or computed there, I/O stages (an HTTP sink, the engine's in-flight calls) keep
//! their requests going. That overlap is the reason the module exists.
//!
//! Each stage keeps a profile (busy share, input queue depth, per-chunk latency
//! percentiles); the terminal returns them as [`StageReport`]s in a
//! [`PipelineReport`].
//!
//! A [`Flow`] is a description: nothing runs until a terminal operation
//! ([`collect`](Flow::collect), [`for_each`](Flow::for_each),
//! [`for_each_chunk`](Flow::for_each_chunk), [`feed`](Flow::feed)) is called, which spawns
//! one tokio task per stage on the current runtime.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ferry_core::Error> {
//! use ferry_core::pipeline::Pipeline;
//!
//! let lines = futures_util::stream::iter((0..1_000u32).map(|i| format!("{i},{}", i * 2)));
//! let (sums, report) = Pipeline::source("read", lines)
//!     .map_blocking("parse", 2, |line: String| {
//!         line.split(',').filter_map(|f| f.parse::<u32>().ok()).sum::<u32>()
//!     })
//!     .collect()
//!     .await?;
//! assert_eq!(sums[10], 30);
//! assert_eq!(report.items, 1_000);
//! assert_eq!(report.stages.len(), 3); // read, parse, collect
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::engine::Intake;
use crate::error::Error;
use crate::item::Item;
use crate::profile::{StageProfile, StageReport};

/// Items per chunk unless [`Flow::chunk_size`] says otherwise.
const DEFAULT_CHUNK_SIZE: usize = 256;
/// Chunks per channel unless [`Flow::capacity`] says otherwise.
const DEFAULT_CAPACITY: usize = 8;

/// A profile shared between a stage's task and its blocking workers.
type SharedProfile = Arc<Mutex<StageProfile>>;

/// What a stage task returns: `Err` only for a failure that must stop the pipeline.
type StageResult = Result<(), Error>;

/// Wires a flow into `graph` (spawning its stages) and returns its output channel.
/// Arguments: the graph, the chunk size chosen for the whole flow, and the capacity of the
/// output channel to create.
type Build<T> = Box<dyn FnOnce(&mut Graph, usize, usize) -> mpsc::Receiver<Vec<T>> + Send>;

/// Entry point: starts a [`Flow`] from a stream.
#[derive(Debug)]
pub struct Pipeline {
    _private: (),
}

impl Pipeline {
    /// A flow whose items come from `stream`. When the flow runs, the source is a tokio
    /// task of its own that reads the stream and sends chunks of up to
    /// [`chunk_size`](Flow::chunk_size) items downstream. A chunk leaves when it is full or
    /// when the stream has nothing ready, so a slow stream never holds back items it has
    /// already produced.
    ///
    /// The source's busy share is the time it spends reading; time blocked on a full
    /// channel (downstream is the bottleneck) counts as idle. It has no input queue, so
    /// its queue depth is always 0.
    pub fn source<T, S>(name: &str, stream: S) -> Flow<T>
    where
        T: Send + 'static,
        S: Stream<Item = T> + Send + 'static,
    {
        let name = name.to_owned();
        Flow {
            build: Box::new(move |graph, chunk_size, capacity| {
                let (tx, rx) = mpsc::channel(capacity);
                graph.spawn_stage(name, 1, move |profile| {
                    source_stage(stream, chunk_size, profile, tx)
                });
                rx
            }),
            chunk_size: DEFAULT_CHUNK_SIZE,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// A chain of stages that yields chunks of `T`; finish it with a terminal operation.
///
/// Builder methods take `self` and return the extended flow. Stage names appear in the
/// [`PipelineReport`] and in errors.
pub struct Flow<T> {
    build: Build<T>,
    chunk_size: usize,
    capacity: usize,
}

impl<T> fmt::Debug for Flow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flow")
            .field("chunk_size", &self.chunk_size)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Flow<T> {
    /// Items per chunk (default 256, at least 1). Chunks are cut at the source and every
    /// map stage keeps them whole, so this sets the unit of work of the whole flow, wherever
    /// in the chain it is called.
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = n.max(1);
        self
    }

    /// Capacity, in chunks, of the channel out of the last stage added so far (default 8,
    /// at least 1). When it is full, that stage waits: back-pressure.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// Applies `f` to every item on tokio's blocking pool, one chunk per blocking task and
    /// up to `workers` chunks (at least 1) at once. Output order is input order.
    ///
    /// Use it for CPU-bound work (parsing, encoding, scoring) so async stages keep their
    /// I/O in flight meanwhile. Busy share is the time spent inside `f`, per worker. A panic
    /// in `f` stops the pipeline and the terminal returns [`Error::Task`] naming the stage.
    pub fn map_blocking<U, F>(self, name: &str, workers: usize, f: F) -> Flow<U>
    where
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let name = name.to_owned();
        let workers = workers.max(1);
        let f = Arc::new(f);
        self.then(move |graph, input, output| {
            let stage = name.clone();
            graph.spawn_stage(name, workers, move |profile| {
                blocking_stage(stage, workers, f, profile, input, output)
            });
        })
    }

    /// Applies the async function `f` to every item, running up to `concurrency` (at
    /// least 1) of its futures at once within a chunk. Output order is input order.
    ///
    /// Use it for I/O per item (a lookup, a fetch). Busy share is the time a chunk is in
    /// hand. The futures run on the stage's task, so they must not block the thread; use
    /// [`map_blocking`](Self::map_blocking) for CPU-bound work.
    pub fn map_async<U, F, Fut>(self, name: &str, concurrency: usize, f: F) -> Flow<U>
    where
        U: Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = U> + Send + 'static,
    {
        let name = name.to_owned();
        let concurrency = concurrency.max(1);
        self.then(move |graph, input, output| {
            graph.spawn_stage(name, 1, move |profile| {
                async_stage(concurrency, f, profile, input, output)
            });
        })
    }

    /// Runs the flow to its end and returns every item, in order, with the report. The
    /// terminal stage is named `collect`.
    ///
    /// Fails with the first stage failure (a panic in a stage names the stage).
    pub async fn collect(self) -> Result<(Vec<T>, PipelineReport), Error> {
        let mut terminal = Terminal::start(self, "collect");
        let mut out = Vec::new();
        while let Some(chunk) = terminal.recv().await {
            out.extend(chunk);
        }
        let report = terminal.finish(Ok(())).await?;
        Ok((out, report))
    }

    /// Runs the flow to its end, awaiting `f` for each item in turn; the terminal stage is
    /// named `name`. Busy share is the time spent in `f`.
    ///
    /// Fails with the first stage failure (a panic in a stage names the stage).
    pub async fn for_each<F, Fut>(self, name: &str, mut f: F) -> Result<PipelineReport, Error>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut terminal = Terminal::start(self, name);
        while let Some(chunk) = terminal.recv().await {
            for item in chunk {
                f(item).await;
            }
        }
        terminal.finish(Ok(())).await
    }

    /// Runs the flow to its end, awaiting `f` for each chunk in turn (a sink that writes in
    /// bulk: one insert, one request per chunk); the terminal stage is named `name`.
    ///
    /// Fails with the first stage failure (a panic in a stage names the stage).
    pub async fn for_each_chunk<F, Fut>(self, name: &str, mut f: F) -> Result<PipelineReport, Error>
    where
        F: FnMut(Vec<T>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut terminal = Terminal::start(self, name);
        while let Some(chunk) = terminal.recv().await {
            f(chunk).await;
        }
        terminal.finish(Ok(())).await
    }

    /// Appends a stage: `attach` receives the graph, this flow's output channel and the
    /// sending side of the new stage's output channel, and spawns the stage.
    fn then<U, A>(self, attach: A) -> Flow<U>
    where
        U: Send + 'static,
        A: FnOnce(&mut Graph, mpsc::Receiver<Vec<T>>, mpsc::Sender<Vec<U>>) + Send + 'static,
    {
        let Flow {
            build,
            chunk_size,
            capacity,
        } = self;
        Flow {
            build: Box::new(move |graph, chunk_size, out_capacity| {
                let input = build(graph, chunk_size, capacity);
                let (tx, rx) = mpsc::channel(out_capacity);
                attach(graph, input, tx);
                rx
            }),
            chunk_size,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

impl<P: Send + 'static> Flow<Item<P>> {
    /// Pushes every item into a running engine's `intake` on a task of its own, waiting
    /// whenever the engine is full (back-pressure reaches the source). The terminal stage is
    /// named `feed`; its busy share is the time spent waiting on the engine, so a busy
    /// `feed` means the engine is the bottleneck.
    ///
    /// The intake is dropped when the flow ends, so once every other intake handle is gone
    /// the engine sees end of input; then call [`Running::finish`](crate::Running::finish).
    /// Fails with [`Error::Closed`] if the engine stopped, or with the first stage failure.
    pub fn feed(self, intake: Intake<P>) -> JoinHandle<Result<PipelineReport, Error>> {
        tokio::spawn(async move {
            let mut terminal = Terminal::start(self, "feed");
            let mut outcome = Ok(());
            'chunks: while let Some(chunk) = terminal.recv().await {
                for item in chunk {
                    if let Err(e) = intake.push(item).await {
                        outcome = Err(e);
                        break 'chunks;
                    }
                }
            }
            drop(intake);
            terminal.finish(outcome).await
        })
    }
}

/// What a finished pipeline did: one report per stage, source first, terminal last.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    /// Per-stage profiles, in flow order (source first, terminal last).
    pub stages: Vec<StageReport>,
    /// Items that reached the terminal.
    pub items: u64,
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &self.stages {
            writeln!(
                f,
                "{:<width$}  {:>9} items  busy {:>5.1}%  queue {:.1} mean / {} max  \
                 p50 {:.1?}  p95 {:.1?}  p99 {:.1?}",
                s.name,
                s.items,
                s.busy_share * 100.0,
                s.mean_queue_depth,
                s.max_queue_depth,
                s.p50,
                s.p95,
                s.p99,
            )?;
        }
        Ok(())
    }
}

/// The stages of a pipeline being run: their profiles and tasks, in flow order.
///
/// Dropping it aborts every stage task still running, so abandoning a terminal (or a
/// failure) never leaves a source reading into the void.
#[derive(Default)]
struct Graph {
    stages: Vec<Stage>,
}

struct Stage {
    name: String,
    profile: SharedProfile,
    /// `None` for the terminal, which runs in the caller's task, and once joined.
    task: Option<JoinHandle<StageResult>>,
}

impl Graph {
    /// Adds a stage without a task of its own (the terminal).
    fn add_stage(&mut self, name: String, workers: usize) -> SharedProfile {
        let profile = Arc::new(Mutex::new(StageProfile::new(name.as_str(), workers)));
        self.stages.push(Stage {
            name,
            profile: Arc::clone(&profile),
            task: None,
        });
        profile
    }

    /// Adds a stage and spawns the task that `run` makes from its profile.
    fn spawn_stage<Fut>(
        &mut self,
        name: String,
        workers: usize,
        run: impl FnOnce(SharedProfile) -> Fut,
    ) where
        Fut: Future<Output = StageResult> + Send + 'static,
    {
        let profile = self.add_stage(name, workers);
        let task = tokio::spawn(run(profile));
        if let Some(stage) = self.stages.last_mut() {
            stage.task = Some(task);
        }
    }

    /// Waits for every stage task, nearest the terminal first, and reports. The first
    /// failure wins; stages upstream of it are aborted (they may be blocked on a stream
    /// that will never end).
    async fn finish(mut self, items: u64) -> Result<PipelineReport, Error> {
        for stage in self.stages.iter_mut().rev() {
            let Some(task) = stage.task.take() else {
                continue;
            };
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(stage_failed(&stage.name, &e)),
            }
        }
        let now = Instant::now();
        let stages = self
            .stages
            .iter()
            .map(|s| lock(&s.profile).report(now))
            .collect();
        Ok(PipelineReport { stages, items })
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        for stage in &self.stages {
            if let Some(task) = &stage.task {
                task.abort();
            }
        }
    }
}

/// The last stage, run in the caller's task: receives chunks and profiles their handling.
struct Terminal<T> {
    graph: Graph,
    input: mpsc::Receiver<Vec<T>>,
    profile: SharedProfile,
    /// The chunk in hand: when it arrived and how many items it had.
    in_hand: Option<(Instant, u64)>,
    items: u64,
}

impl<T> Terminal<T> {
    /// Spawns every stage of `flow` and adds the terminal stage `name`.
    fn start(flow: Flow<T>, name: &str) -> Self {
        let mut graph = Graph::default();
        let input = (flow.build)(&mut graph, flow.chunk_size, flow.capacity);
        let profile = graph.add_stage(name.to_owned(), 1);
        Terminal {
            graph,
            input,
            profile,
            in_hand: None,
            items: 0,
        }
    }

    /// The next chunk, once the previous one is accounted as done; `None` at end of input.
    async fn recv(&mut self) -> Option<Vec<T>> {
        self.done();
        let chunk = self.input.recv().await?;
        let now = Instant::now();
        {
            let mut p = lock(&self.profile);
            p.sample_depth(depth(&self.input));
            p.set_busy(true, now);
        }
        self.in_hand = Some((now, chunk.len() as u64));
        Some(chunk)
    }

    /// Records the chunk in hand, if any, as handled.
    fn done(&mut self) {
        if let Some((started, n)) = self.in_hand.take() {
            let now = Instant::now();
            let mut p = lock(&self.profile);
            p.set_busy(false, now);
            p.record(now.saturating_duration_since(started), n);
            self.items += n;
        }
    }

    /// Ends the run: with the terminal's own `outcome` if it failed (aborting the stages),
    /// else with the first stage failure or the report.
    async fn finish(mut self, outcome: Result<(), Error>) -> Result<PipelineReport, Error> {
        self.done();
        let Terminal {
            graph,
            input,
            items,
            ..
        } = self;
        // Closing our end first lets any stage still sending see that nobody listens.
        drop(input);
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "pipeline terminal failed; stopping its stages");
            return Err(e);
        }
        graph.finish(items).await
    }
}

/// Reads `stream` into chunks and sends them downstream.
async fn source_stage<T, S>(
    stream: S,
    chunk_size: usize,
    profile: SharedProfile,
    output: mpsc::Sender<Vec<T>>,
) -> StageResult
where
    S: Stream<Item = T>,
{
    let mut stream = std::pin::pin!(stream);
    let mut ended = false;
    while !ended {
        let started = Instant::now();
        lock(&profile).set_busy(true, started);
        let Some(first) = stream.next().await else {
            break;
        };
        let mut chunk = Vec::with_capacity(chunk_size);
        chunk.push(first);
        // Take what is ready without waiting: a chunk leaves when full or when the stream
        // would make it wait, so items already read never sit behind a slow stream.
        while chunk.len() < chunk_size {
            match stream.next().now_or_never() {
                Some(Some(item)) => chunk.push(item),
                Some(None) => {
                    // Polling a finished stream again is not allowed in general.
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        let now = Instant::now();
        {
            let mut p = lock(&profile);
            p.set_busy(false, now);
            p.record(now.saturating_duration_since(started), chunk.len() as u64);
        }
        if output.send(chunk).await.is_err() {
            // Downstream stopped; whoever stopped it reports why.
            return Ok(());
        }
    }
    lock(&profile).set_busy(false, Instant::now());
    Ok(())
}

/// Runs `f` over chunks on the blocking pool, `workers` chunks at most, in order.
async fn blocking_stage<T, U, F>(
    name: String,
    workers: usize,
    f: Arc<F>,
    profile: SharedProfile,
    mut input: mpsc::Receiver<Vec<T>>,
    output: mpsc::Sender<Vec<U>>,
) -> StageResult
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    // Results are awaited front first, which is what keeps the output in input order while
    // later chunks are already being worked on.
    let mut in_flight: VecDeque<JoinHandle<Vec<U>>> = VecDeque::with_capacity(workers);
    let mut input_open = true;
    loop {
        tokio::select! {
            // Keep the workers fed first; results wait in their handles meanwhile.
            biased;
            chunk = input.recv(), if input_open && in_flight.len() < workers => match chunk {
                Some(chunk) => {
                    lock(&profile).sample_depth(depth(&input));
                    let f = Arc::clone(&f);
                    let profile = Arc::clone(&profile);
                    in_flight.push_back(tokio::task::spawn_blocking(move || {
                        let started = Instant::now();
                        let n = chunk.len() as u64;
                        let out: Vec<U> = chunk.into_iter().map(|item| f(item)).collect();
                        let took = started.elapsed();
                        let mut p = lock(&profile);
                        p.add_busy(took);
                        p.record(took, n);
                        out
                    }));
                }
                None => input_open = false,
            },
            done = front(&mut in_flight), if !in_flight.is_empty() => {
                in_flight.pop_front();
                let out = done.map_err(|e| stage_failed(&name, &e))?;
                if output.send(out).await.is_err() {
                    return Ok(());
                }
            },
            else => return Ok(()),
        }
    }
}

/// Runs the async `f` over each chunk's items, `concurrency` at once, in order.
async fn async_stage<T, U, F, Fut>(
    concurrency: usize,
    f: F,
    profile: SharedProfile,
    mut input: mpsc::Receiver<Vec<T>>,
    output: mpsc::Sender<Vec<U>>,
) -> StageResult
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = U>,
{
    while let Some(chunk) = input.recv().await {
        let started = Instant::now();
        {
            let mut p = lock(&profile);
            p.sample_depth(depth(&input));
            p.set_busy(true, started);
        }
        let n = chunk.len() as u64;
        let out: Vec<U> = futures_util::stream::iter(chunk)
            .map(&f)
            .buffered(concurrency)
            .collect()
            .await;
        let now = Instant::now();
        {
            let mut p = lock(&profile);
            p.set_busy(false, now);
            p.record(now.saturating_duration_since(started), n);
        }
        if output.send(out).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Awaits the oldest in-flight chunk; never completes when there is none (the branch that
/// polls it is disabled then).
async fn front<U>(in_flight: &mut VecDeque<JoinHandle<U>>) -> Result<U, JoinError> {
    match in_flight.front_mut() {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// Chunks waiting in a stage's input channel.
fn depth<T>(rx: &mpsc::Receiver<T>) -> u64 {
    rx.max_capacity().saturating_sub(rx.capacity()) as u64
}

/// A profile's lock; a worker that panicked while holding it left the numbers usable.
fn lock(profile: &Mutex<StageProfile>) -> MutexGuard<'_, StageProfile> {
    profile.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stage_failed(name: &str, e: &JoinError) -> Error {
    let what = if e.is_panic() {
        "panicked"
    } else {
        "was cancelled"
    };
    tracing::warn!(stage = name, error = %e, "pipeline stage failed");
    Error::Task(format!("pipeline stage `{name}` {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{handler_fn, BatchOutcome, Engine, EngineConfig};
    use futures_util::stream;
    use std::collections::HashSet;
    use std::hint::black_box;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Spins for `d` of real time, keeping a core busy.
    fn burn(d: Duration) {
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < d {
            x = black_box(x.wrapping_add(1));
        }
        black_box(x);
    }

    #[tokio::test]
    async fn map_blocking_preserves_order() {
        let (out, report) = Pipeline::source("numbers", stream::iter(0..10_000u64))
            .chunk_size(64)
            .map_blocking("triple", 4, |x: u64| {
                // Uneven work per chunk so that chunks finish out of order.
                if x % 64 == 0 {
                    for i in 0..((x / 64) % 7) * 5_000 {
                        black_box(i);
                    }
                }
                x * 3
            })
            .collect()
            .await
            .expect("pipeline runs");
        let expected: Vec<u64> = (0..10_000u64).map(|x| x * 3).collect();
        assert_eq!(out, expected);
        assert_eq!(report.items, 10_000);
    }

    /// The point of the module: CPU work on the blocking pool overlaps the I/O stage.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cpu_stage_overlaps_io_stage() {
        // The I/O stage, while it holds chunk k, waits until the CPU stage has *started*
        // chunk k + 1. Stages that overlap pass at once; a pipeline that ran its stages one
        // after the other would deadlock here, which the timeout turns into a failure. No
        // timing ratio is asserted, so a loaded machine cannot make this flaky.
        const ITEMS: u64 = 200;
        const CHUNK: usize = 10;
        let chunks = ITEMS / CHUNK as u64;
        let started: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let notify = Arc::new(tokio::sync::Notify::new());
        let (s2, n2) = (Arc::clone(&started), Arc::clone(&notify));
        let run = Pipeline::source("read", stream::iter(0..ITEMS))
            .chunk_size(CHUNK)
            .map_blocking("cpu", 1, move |x: u64| {
                if x % CHUNK as u64 == 0 {
                    s2.lock().unwrap().insert(x / CHUNK as u64);
                    n2.notify_waiters();
                }
                burn(Duration::from_micros(50));
                x
            })
            .for_each_chunk("io", move |chunk: Vec<u64>| {
                let (started, notify) = (Arc::clone(&started), Arc::clone(&notify));
                async move {
                    let next = chunk[0] / CHUNK as u64 + 1;
                    loop {
                        let notified = notify.notified();
                        if next >= chunks || started.lock().unwrap().contains(&next) {
                            break;
                        }
                        notified.await;
                    }
                }
            });
        let report = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the CPU stage must work while the I/O stage waits")
            .expect("pipeline runs");
        assert_eq!(report.items, ITEMS);
    }

    #[tokio::test]
    async fn panic_in_blocking_stage_is_a_task_error_naming_the_stage() {
        let result = Pipeline::source("numbers", stream::iter(0..1_000u64))
            .chunk_size(16)
            .map_blocking("explode", 2, |x: u64| {
                if x == 500 {
                    panic!("boom at {x}");
                }
                x
            })
            .collect()
            .await;
        match result {
            Err(Error::Task(msg)) => assert!(msg.contains("explode"), "{msg}"),
            other => panic!("expected a task error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn panic_in_async_stage_is_a_task_error_naming_the_stage() {
        let result = Pipeline::source("numbers", stream::iter(0..100u64))
            .map_async("lookup", 4, |x: u64| async move {
                assert!(x != 50, "lookup failed");
                x
            })
            .for_each("sink", |_| async {})
            .await;
        match result {
            Err(Error::Task(msg)) => assert!(msg.contains("lookup"), "{msg}"),
            other => panic!("expected a task error, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn report_has_one_entry_per_stage() {
        let report = Pipeline::source("read", stream::iter(0..1_000u64))
            .chunk_size(100)
            .map_blocking("parse", 2, |x: u64| x + 1)
            .map_async("enrich", 4, |x: u64| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                x * 2
            })
            .for_each_chunk("write", |_chunk| {
                tokio::time::sleep(Duration::from_millis(10))
            })
            .await
            .expect("pipeline runs");

        assert_eq!(report.items, 1_000);
        let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["read", "parse", "enrich", "write"]);
        for stage in &report.stages {
            assert_eq!(stage.items, 1_000, "{}", stage.name);
            assert_eq!(stage.calls, 10, "{}", stage.name);
        }
        // Paused clock: the sink's chunks take exactly 10 ms.
        let write = &report.stages[3];
        assert!(
            write.p50 >= Duration::from_micros(9_990) && write.p99 <= Duration::from_micros(10_010),
            "{write:?}"
        );
        assert!(write.busy_share > 0.0 && write.busy_share <= 1.0);
        // Display: one line per stage.
        let text = report.to_string();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.lines().all(|l| l.contains("p99")), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_channels_back_pressure_the_source() {
        let read = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&read);
        let items = (0..10_000u64).inspect(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let stalled_at = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&stalled_at);
        let mut first = true;
        let report = Pipeline::source("read", stream::iter(items))
            .chunk_size(10)
            .capacity(2)
            .map_blocking("cpu", 2, |x: u64| x)
            .capacity(2)
            .for_each_chunk("slow", |_chunk| {
                let stall = std::mem::replace(&mut first, false);
                let read = Arc::clone(&read);
                let seen = Arc::clone(&seen);
                async move {
                    if stall {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        seen.store(read.load(Ordering::Relaxed), Ordering::Relaxed);
                    }
                }
            })
            .await
            .expect("pipeline runs");
        let read_while_stalled = stalled_at.load(Ordering::Relaxed);
        assert_eq!(report.items, 10_000);
        // Source: 1 chunk blocked in send + 2 queued; cpu: 2 in flight + 1 blocked in send
        // + 2 queued; sink: 1 in hand. 9 chunks of 10; nothing like the 10,000 available.
        assert!(
            read_while_stalled > 0 && read_while_stalled <= 90,
            "{read_while_stalled}"
        );
    }

    #[tokio::test]
    async fn feed_into_engine() {
        const N: u64 = 5_000;
        let handler = handler_fn(|batch: &crate::Batch<u64>| {
            let out: Vec<u64> = batch.payloads().copied().collect();
            Box::pin(async move { BatchOutcome::ok(out) })
        });
        let running = Engine::new(EngineConfig::standard(), handler)
            .expect("valid config")
            .start();
        let feeding = Pipeline::source("read", stream::iter(0..N))
            .map_blocking("to-item", 2, |i: u64| Item::new(i, i, i * 2))
            .feed(running.intake());
        let pipeline = feeding.await.expect("feed task").expect("pipeline runs");
        assert_eq!(pipeline.items, N);
        assert_eq!(pipeline.stages.len(), 3);
        let report = running.finish().await.expect("engine runs");
        assert_eq!(report.progress.succeeded, N);
    }
}
