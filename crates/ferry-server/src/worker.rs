//! The worker: claims items from the store, runs them through one engine per handler, and
//! records each item's outcome back in the store.
//!
//! ```text
//! store.claim ──> engine[handler].intake ──> Handler ──> settled ──> store.complete / fail
//!      ^                                                                    │
//!      └────────────── while fewer than `max_in_flight` items are held ─────┘
//! ```
//!
//! * An item travels through the engine keyed by its store id, so its outcome finds its row.
//!   The engine does the batching, adaptive concurrency, retries with backoff and splitting;
//!   what it dead-letters is dead-lettered in the store.
//! * Results are recorded per settled batch in one store transaction (batches that settled
//!   while the last one was being written are joined into one); the store's lease check
//!   and unique result constraint make a second record of an item impossible, so a worker
//!   that lost its lease (it hung, the item was rescued) cannot record it twice.
//! * Leases are renewed every third of their length while the worker runs, and at each
//!   renewal the worker also rescues expired leases of dead workers: a killed worker's items
//!   are queued again at most a third of a lease after its leases ran out, that is within
//!   1⅓ leases of its last renewal (the crash test in `ferry-cli` holds it to this).
//! * A store that goes away (a PostgreSQL restart, terminated backends) is ridden out:
//!   claims, results and dead letters are retried with backoff ([`crate::retry`]) until it
//!   answers again; renewals and rescues go on at their pace and log failures.
//! * Idle workers sleep in [`Store::wait_for_work`] (LISTEN/NOTIFY on PostgreSQL), not in a
//!   polling loop; a claim that got fewer items than it asked for is followed by that wait
//!   too, not by a claim that would find nothing.
//! * Shutdown: stop claiming and cancel every engine: items waiting in it end at once,
//!   calls already in flight get `shutdown_grace` to finish and be recorded; then every lease
//!   still held is released, so another worker takes the rest at once rather than after the
//!   leases expire.
//!
//! * Jobs: each held item's job is tracked ([`crate::tracking`]); items of a job that was
//!   cancelled or ran out of time while they were held skip the handler and end cancelled.
//!   A job's `max_batch_size` gives its items an engine of their own whose batches are
//!   capped at it (one engine per handler and cap).
//!
//! Handlers receive the item's payload; one registered with
//! [`Handlers::register_with_params`] receives `{"params": <the job's params>, "payload":
//! <payload>}` instead. Items of high-priority jobs board the engine's batches first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Engine, EngineConfig, Handler, Intake, Item, Running, Settled};
use ferry_store::{ClaimedItem, Store};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch_metrics::{self, Throughput};
use crate::error::Error;
use crate::retry;
use crate::tracking::{Gate, JobTracker};

/// A handler the service can run, with the engine settings it runs under.
#[derive(Clone)]
struct Registered {
    handler: Arc<dyn Handler<Value, Value>>,
    config: EngineConfig,
    /// Whether items reach the handler as `{"params": <job params>, "payload": <payload>}`.
    with_params: bool,
}

/// The handlers a worker knows, by the name jobs give.
#[derive(Default, Clone)]
pub struct Handlers {
    map: HashMap<String, Registered>,
    /// Names jobs may give that other processes run ([`declare`](Self::declare)).
    declared: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` under `name`, run by an engine with `config`.
    pub fn register(
        self,
        name: &str,
        handler: impl Handler<Value, Value>,
        config: EngineConfig,
    ) -> Self {
        self.insert(name, Arc::new(handler), config, false)
    }

    /// Registers `handler` under `name` like [`register`](Self::register), but each item
    /// reaches it as `{"params": <its job's params>, "payload": <the item's payload>}`, so
    /// one handler can serve jobs that configure it differently (a URL, a model option).
    /// Items of different jobs may share a batch; each carries its own job's params.
    pub fn register_with_params(
        self,
        name: &str,
        handler: impl Handler<Value, Value>,
        config: EngineConfig,
    ) -> Self {
        self.insert(name, Arc::new(handler), config, true)
    }

    fn insert(
        mut self,
        name: &str,
        handler: Arc<dyn Handler<Value, Value>>,
        config: EngineConfig,
        with_params: bool,
    ) -> Self {
        self.map.insert(
            name.to_owned(),
            Registered {
                handler,
                config,
                with_params,
            },
        );
        self
    }

    /// Declares `name` a handler jobs may give that this process does not run: an API
    /// without a worker (`ferry serve --no-worker`) accepts jobs for handlers that only its
    /// `ferry worker` processes are configured with. A worker given such a job dead-letters
    /// its items ("no handler named ...").
    pub fn declare(mut self, name: &str) -> Self {
        self.declared.insert(name.to_owned());
        self
    }

    /// `self` with `other`'s handlers (and declared names) added; where both name the same
    /// handler, `other`'s wins.
    pub fn merge(mut self, other: Handlers) -> Self {
        self.map.extend(other.map);
        self.declared.extend(other.declared);
        self
    }

    /// The names jobs may give (registered or declared), sorted.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.map
            .keys()
            .chain(self.declared.iter())
            .cloned()
            .collect()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The worker's identity in leases (default `worker-<pid>`).
    pub id: String,
    /// Lease length (default 30 s); renewed every third of it, when expired leases of other
    /// workers are also rescued.
    pub lease: Duration,
    /// Most items held (claimed, not yet recorded) at once (default 4,096).
    pub max_in_flight: usize,
    /// Most items per claim (default 512).
    pub claim_batch: usize,
    /// Longest idle wait before claiming again (default 1 s; wake-ups usually come first).
    pub idle_wait: Duration,
    /// How long calls in flight at shutdown may finish (default 10 s).
    pub shutdown_grace: Duration,
    /// Most items per tenant in flight at once, across every worker (default: no limit);
    /// [`run_worker`](crate::run_worker) opens its store with it.
    pub tenant_max_in_flight: Option<std::num::NonZeroU64>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            id: format!("worker-{}", std::process::id()),
            lease: Duration::from_secs(30),
            max_in_flight: 4096,
            claim_batch: 512,
            idle_wait: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            tenant_max_in_flight: None,
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Items claimed.
    pub claimed: u64,
    /// Results recorded.
    pub completed: u64,
    /// Items dead-lettered.
    pub dead_lettered: u64,
    /// Leases given back at shutdown.
    pub released: u64,
}

/// A worker over a store; see the module docs.
#[derive(Debug)]
pub struct Worker {
    store: Arc<dyn Store>,
    handlers: Handlers,
    options: WorkerOptions,
}

struct Counters {
    held: AtomicUsize,
    completed: AtomicU64,
    dead: AtomicU64,
    jobs: Arc<JobTracker>,
    meter: Arc<Throughput>,
}

/// Engines are per handler and per job batch-size cap.
type LaneKey = (String, Option<u64>);

struct Lane {
    /// Whether items go in wrapped with their job's params.
    with_params: bool,
    running: Running<Value, Value>,
    intake: Intake<Value>,
    writer: JoinHandle<Result<(), Error>>,
}

impl Worker {
    /// A worker running `handlers` over `store`.
    pub fn new(store: Arc<dyn Store>, handlers: Handlers, options: WorkerOptions) -> Self {
        Worker {
            store,
            handlers,
            options,
        }
    }

    /// Runs until `shutdown` is cancelled, then drains and releases; see the module docs.
    pub async fn run(self, shutdown: CancellationToken) -> Result<WorkerReport, Error> {
        let counters = Arc::new(Counters {
            held: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            jobs: Arc::default(),
            meter: Arc::default(),
        });
        let keepalive = self.spawn_keepalive(shutdown.clone());
        let watch = tokio::spawn(Arc::clone(&counters.jobs).watch(
            Arc::clone(&self.store),
            Arc::clone(&counters.meter),
            shutdown.clone(),
        ));
        let mut lanes: HashMap<LaneKey, Lane> = HashMap::new();
        let mut report = WorkerReport::default();
        let opts = &self.options;
        let result = async {
            while !shutdown.is_cancelled() {
                let room = opts
                    .max_in_flight
                    .saturating_sub(counters.held.load(Ordering::Acquire));
                if room == 0 {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
                    }
                }
                let asked = room.min(opts.claim_batch);
                let claim = retry::transient("claiming items", &shutdown, || {
                    self.store.claim(&opts.id, asked, opts.lease)
                });
                let claimed = match claim.await {
                    Ok(claimed) => claimed,
                    // Shutting down while the store is away: stop; leases lapse and the
                    // items are rescued.
                    Err(e) if e.is_transient() => break,
                    Err(e) => return Err(e.into()),
                };
                if claimed.is_empty() {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = self.store.wait_for_work(opts.idle_wait) => continue,
                    }
                }
                let drained = claimed.len() < asked;
                report.claimed += claimed.len() as u64;
                counters.held.fetch_add(claimed.len(), Ordering::AcqRel);
                for item in claimed {
                    self.dispatch(item, &mut lanes, &counters, &shutdown)
                        .await?;
                }
                // A claim that got less than it asked for emptied the queue (for this
                // worker): wait for a wake-up rather than claim nothing next. Work that
                // arrived meanwhile left a wake-up behind, so this wait ends at once.
                if drained {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = self.store.wait_for_work(opts.idle_wait) => {}
                    }
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        // Shut down: cancel every engine (waiting items end now, calls in flight get the
        // grace), record what finished, then give back every lease still held.
        let mut stopped = Ok(());
        for (_, lane) in lanes.drain() {
            lane.running.cancel();
            drop(lane.intake);
            let finished = lane.running.finish().await.map(drop).map_err(Error::from);
            let written = match lane.writer.await {
                Ok(r) => r,
                Err(e) => Err(Error::Engine(ferry_core::Error::Task(e.to_string()))),
            };
            if stopped.is_ok() {
                stopped = finished.and(written);
            }
        }
        keepalive.abort();
        watch.abort();
        batch_metrics::set_active_jobs(0);
        report.released = match retry::at_shutdown("taking leases back", || {
            self.store.release(&opts.id)
        })
        .await
        {
            Ok(n) => n,
            // The database is away: the leases lapse and another worker rescues the
            // items, as after a crash; nothing this worker settled is lost.
            Err(e) if e.is_transient() => {
                tracing::warn!(worker = %opts.id, error = %e, "could not take leases back at shutdown; they lapse and are rescued");
                0
            }
            Err(e) => return Err(e.into()),
        };
        report.completed = counters.completed.load(Ordering::Acquire);
        report.dead_lettered = counters.dead.load(Ordering::Acquire);
        result?;
        stopped?;
        Ok(report)
    }

    async fn dispatch(
        &self,
        item: ClaimedItem,
        lanes: &mut HashMap<LaneKey, Lane>,
        counters: &Arc<Counters>,
        stop: &CancellationToken,
    ) -> Result<(), Error> {
        let key: LaneKey = (item.handler.clone(), item.max_batch_size);
        if !lanes.contains_key(&key) {
            let Some(registered) = self.handlers.map.get(&item.handler).cloned() else {
                let error = format!(
                    "no handler named `{}` on worker {}",
                    item.handler, self.options.id
                );
                retry::transient("dead-lettering an item", stop, || {
                    self.store
                        .fail(&self.options.id, item.item_id, &error, None, true)
                })
                .await?;
                counters.held.fetch_sub(1, Ordering::AcqRel);
                counters.dead.fetch_add(1, Ordering::AcqRel);
                return Ok(());
            };
            let with_params = registered.with_params;
            let mut config = registered.config;
            config.shutdown_grace = self.options.shutdown_grace;
            // Engines are named after their handler: the `engine` label of their metrics.
            config.name = item.handler.clone();
            if let Some(cap) = item.max_batch_size {
                let cap = usize::try_from(cap).unwrap_or(usize::MAX).max(1);
                if cap < config.flush.items_cap() {
                    let cap =
                        std::num::NonZeroUsize::new(cap).unwrap_or(std::num::NonZeroUsize::MIN);
                    config.flush = config.flush.max_items(cap);
                }
            }
            let gate = Gate {
                inner: registered.handler,
                tracker: Arc::clone(&counters.jobs),
            };
            let mut running =
                Engine::new(config, Arc::new(gate) as Arc<dyn Handler<Value, Value>>)?
                    .emit_settled(64)
                    .start();
            let settled = running.take_settled().ok_or(ferry_core::Error::Closed)?;
            let writer = tokio::spawn(record(
                Arc::clone(&self.store),
                self.options.id.clone(),
                settled,
                Arc::clone(counters),
                stop.clone(),
            ));
            let intake = running.intake();
            lanes.insert(
                key.clone(),
                Lane {
                    with_params,
                    running,
                    intake,
                    writer,
                },
            );
        }
        let lane = lanes.get(&key).ok_or(ferry_core::Error::Closed)?;
        counters.jobs.hold(&item);
        let id = item.item_id;
        let payload = if lane.with_params {
            serde_json::json!({ "params": item.params, "payload": item.payload })
        } else {
            item.payload
        };
        // The job's priority is the item's: high items board before the others waiting,
        // low ones after.
        lane.intake
            .push(Item::new(id.to_string(), id.max(0) as u64, payload).with_priority(item.priority))
            .await?;
        Ok(())
    }

    fn spawn_keepalive(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let store = Arc::clone(&self.store);
        let id = self.options.id.clone();
        let lease = self.options.lease;
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(lease / 3);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = beat.tick() => {}
                }
                // A backstop for the service's own deadline check (every 250 ms in `ferry
                // serve`): jobs past their `timeout_seconds` fail even without an API process.
                if let Err(e) = store.expire_overdue().await {
                    tracing::warn!(worker = %id, error = %e, "deadline check failed");
                }
                if let Err(e) = store.heartbeat(&id, lease).await {
                    tracing::warn!(worker = %id, error = %e, "lease renewal failed");
                }
                // Cheap when nothing expired (SQLite: an index range scan on `lease_until`;
                // PostgreSQL: a scan of the claims in flight, `leases`).
                match store.rescue_expired().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(worker = %id, rescued = n, "requeued items of expired leases")
                    }
                    Err(e) => tracing::warn!(worker = %id, error = %e, "rescue failed"),
                }
            }
        })
    }
}

/// Most items whose outcomes one store transaction records (settled batches that wait
/// together are joined up to this).
const MAX_ACK_ITEMS: usize = 4096;

/// Writes one engine's settled outcomes to the store.
async fn record(
    store: Arc<dyn Store>,
    worker: String,
    mut settled: tokio::sync::mpsc::Receiver<Vec<Settled<Value, Value>>>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> Result<(), Error> {
    while let Some(first) = settled.recv().await {
        // Batched acknowledgements: whatever else has settled meanwhile goes into the same
        // store transaction (at once, never waiting for more), so a busy worker writes
        // fewer, larger transactions and an idle one writes each batch as it comes.
        let mut batch = first;
        while batch.len() < MAX_ACK_ITEMS {
            match settled.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let mut results = Vec::with_capacity(n);
        let mut ended = Vec::with_capacity(n);
        for s in batch {
            match s {
                Settled::Succeeded { item, result } => {
                    if let Ok(id) = item.key().as_str().parse::<i64>() {
                        results.push((id, result));
                        ended.push(id);
                    }
                }
                Settled::DeadLettered(d) => {
                    if let Ok(id) = d.item.key().as_str().parse::<i64>() {
                        let outcome = retry::transient("dead-lettering an item", &stop, || {
                            store.fail(&worker, id, &d.error, None, true)
                        })
                        .await?;
                        if outcome == ferry_store::FailOutcome::DeadLettered {
                            counters.dead.fetch_add(1, Ordering::AcqRel);
                        }
                        ended.push(id);
                    }
                }
                // Only cancellation produces these; their leases are released at shutdown.
                Settled::Cancelled(_) => {}
            }
        }
        if !results.is_empty() {
            // Retried whole: items already recorded (the commit went through before the
            // connection dropped) are no longer leased and are skipped.
            let recorded = retry::transient("recording results", &stop, || {
                store.complete(&worker, results.clone())
            })
            .await?;
            counters.completed.fetch_add(recorded, Ordering::AcqRel);
        }
        counters.meter.record(ended.len() as u64);
        counters.held.fetch_sub(n, Ordering::AcqRel);
        let emptied = counters.jobs.settle(ended);
        if !emptied.is_empty() {
            batch_metrics::set_active_jobs(counters.jobs.active_jobs());
        }
        for (tenant, job) in emptied {
            // This worker held the job's last items here: if it finished, time it.
            match store.job(&tenant, &job).await {
                Ok(Some(j)) if j.status.is_finished() => batch_metrics::job_finished(&j),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "reading a finished job failed"),
            }
        }
    }
    Ok(())
}
