//! What a worker knows about the jobs of the items it holds: which job each held item
//! belongs to, how many items of each job it holds, and which of those jobs stopped (a
//! client cancelled it, or its `timeout_seconds` ran out) while their items were in flight.
//!
//! * [`JobTracker::watch`] reads the status of every job the worker holds items of every
//!   250 ms; a job that finished while items are held is *stopped*.
//! * [`Gate`] wraps each handler: items of stopped jobs are not sent to it but end at once
//!   with a fatal outcome, which the store records as cancelled (the job is cancelled or
//!   failed), so a timed-out job's items stop being worked on within a quarter second.
//! * When a worker records the last item it held of a job that has finished, the job's
//!   processing time is observed (`async_batch_processing_time_seconds`, see
//!   [`crate::batch_metrics`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, ItemOutcome};
use ferry_store::{ClaimedItem, JobId, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::batch_metrics;

/// What items of a stopped job end with (the store records them cancelled).
pub(crate) const STOPPED: &str = "the job was cancelled or ran out of time (timeout_seconds)";

/// How often [`JobTracker::watch`] reads the held jobs' status.
pub(crate) const WATCH_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug)]
struct Held {
    tenant: String,
    items: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Held item id -> its job.
    items: HashMap<i64, JobId>,
    jobs: HashMap<JobId, Held>,
    stopped: HashSet<JobId>,
}

/// The jobs of a worker's held items; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct JobTracker {
    inner: Mutex<Inner>,
}

impl JobTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a claimed item.
    pub(crate) fn hold(&self, item: &ClaimedItem) {
        let mut inner = self.lock();
        inner.items.insert(item.item_id, item.job_id.clone());
        inner
            .jobs
            .entry(item.job_id.clone())
            .or_insert_with(|| Held {
                tenant: item.tenant.clone(),
                items: 0,
            })
            .items += 1;
    }

    /// Notes that `ids` were recorded (or given up); returns the jobs of which this worker
    /// now holds no item, with their tenants.
    pub(crate) fn settle(&self, ids: impl IntoIterator<Item = i64>) -> Vec<(String, JobId)> {
        let mut inner = self.lock();
        let mut emptied = Vec::new();
        for id in ids {
            let Some(job) = inner.items.remove(&id) else {
                continue;
            };
            let now_empty = inner.jobs.get_mut(&job).is_some_and(|held| {
                held.items = held.items.saturating_sub(1);
                held.items == 0
            });
            if now_empty {
                if let Some(held) = inner.jobs.remove(&job) {
                    inner.stopped.remove(&job);
                    emptied.push((held.tenant, job));
                }
            }
        }
        emptied
    }

    /// For each of `ids`, whether it belongs to a stopped job (one lock for the batch; no
    /// lookups at all while no job is stopped, the usual case).
    pub(crate) fn stopped(&self, ids: impl Iterator<Item = i64>) -> Vec<bool> {
        let inner = self.lock();
        if inner.stopped.is_empty() {
            return ids.map(|_| false).collect();
        }
        ids.map(|id| {
            inner
                .items
                .get(&id)
                .is_some_and(|job| inner.stopped.contains(job))
        })
        .collect()
    }

    /// Jobs this worker holds items of.
    pub(crate) fn active_jobs(&self) -> usize {
        self.lock().jobs.len()
    }

    fn held_jobs(&self) -> Vec<(String, JobId)> {
        self.lock()
            .jobs
            .iter()
            .map(|(id, held)| (held.tenant.clone(), id.clone()))
            .collect()
    }

    fn stop(&self, job: JobId) {
        self.lock().stopped.insert(job);
    }

    /// Every [`WATCH_EVERY`] until `shutdown`: marks held jobs that finished as stopped and
    /// refreshes the worker's gauges. Store errors are logged and retried next round.
    pub(crate) async fn watch(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        meter: Arc<batch_metrics::Throughput>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            batch_metrics::set_active_jobs(self.active_jobs());
            meter.publish();
            for (tenant, id) in self.held_jobs() {
                match store.job(&tenant, &id).await {
                    Ok(Some(job)) if job.status.is_finished() => self.stop(id),
                    Ok(Some(_)) => {}
                    Ok(None) => self.stop(id), // deleted: nothing to record it in
                    Err(e) => {
                        tracing::debug!(error = %e, "reading a held job's status failed");
                        break;
                    }
                }
            }
        }
    }
}

/// A handler behind the tracker: items of stopped jobs end with a fatal [`STOPPED`] outcome
/// instead of being sent; see the module docs.
pub(crate) struct Gate {
    pub(crate) inner: Arc<dyn Handler<Value, Value>>,
    pub(crate) tracker: Arc<JobTracker>,
}

fn item_id(item: &ferry_core::Item<Value>) -> i64 {
    item.key().as_str().parse().unwrap_or(-1)
}

impl Handler<Value, Value> for Gate {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        let stopped = self.tracker.stopped(batch.items().iter().map(item_id));
        if !stopped.contains(&true) {
            return self.inner.call(batch);
        }
        Box::pin(async move {
            let live: Vec<_> = batch
                .items()
                .iter()
                .zip(&stopped)
                .filter(|(_, s)| !**s)
                .map(|(i, _)| i.clone())
                .collect();
            let mut outcomes = if live.is_empty() {
                Vec::new().into_iter()
            } else {
                let sub = Batch::new(live);
                match self.inner.call(&sub).await {
                    BatchOutcome::Done(outcomes) => outcomes.into_iter(),
                    other => return other,
                }
            };
            let merged = stopped
                .iter()
                .map(|s| {
                    if *s {
                        ItemOutcome::Fatal(STOPPED.to_owned())
                    } else {
                        outcomes.next().unwrap_or_else(|| {
                            ItemOutcome::Fatal("the handler gave no outcome".into())
                        })
                    }
                })
                .collect();
            BatchOutcome::Done(merged)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Item;
    use ferry_store::Priority;

    fn claimed(job: &JobId, id: i64) -> ClaimedItem {
        ClaimedItem {
            job_id: job.clone(),
            tenant: "t".into(),
            item_id: id,
            key: id.to_string(),
            payload: Value::Null,
            handler: "h".into(),
            params: Value::Null,
            priority: Priority::Medium,
            attempts: 1,
            max_batch_size: None,
        }
    }

    #[test]
    fn settle_reports_jobs_no_longer_held() {
        let t = JobTracker::default();
        let (a, b) = (JobId::new(), JobId::new());
        for (job, id) in [(&a, 1), (&a, 2), (&b, 3)] {
            t.hold(&claimed(job, id));
        }
        assert_eq!(t.active_jobs(), 2);
        assert!(t.settle([1]).is_empty());
        assert_eq!(t.settle([2, 3, 99]).len(), 2);
        assert_eq!(t.active_jobs(), 0);
    }

    #[tokio::test]
    async fn items_of_stopped_jobs_skip_the_handler() {
        let t = Arc::new(JobTracker::default());
        let (live, dead) = (JobId::new(), JobId::new());
        t.hold(&claimed(&live, 1));
        t.hold(&claimed(&dead, 2));
        t.hold(&claimed(&live, 3));
        t.stop(dead);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let gate = Gate {
            inner: Arc::new(ferry_core::handler_fn(move |b: &Batch<Value>| {
                log.lock().unwrap().push(b.len());
                let out = b.payloads().map(|p| ItemOutcome::Ok(p.clone())).collect();
                Box::pin(async move { BatchOutcome::Done(out) })
            })),
            tracker: Arc::clone(&t),
        };
        let batch = Batch::new(
            (1..=3)
                .map(|i| Item::new(i.to_string(), i as u64, Value::from(i)))
                .collect(),
        );
        let BatchOutcome::Done(out) = gate.call(&batch).await else {
            panic!("not done")
        };
        assert_eq!(
            *seen.lock().unwrap(),
            vec![2],
            "only the live items were sent"
        );
        assert!(matches!(&out[0], ItemOutcome::Ok(v) if v == 1));
        assert!(matches!(&out[1], ItemOutcome::Fatal(e) if e == STOPPED));
        assert!(matches!(&out[2], ItemOutcome::Ok(v) if v == 3));
    }
}
