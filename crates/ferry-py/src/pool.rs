//! The threads sync handlers run on: at most the engine's concurrency cap, started as calls
//! need them, each holding one Python thread state for its whole life.
//!
//! Why not tokio's blocking pool: a thread that enters Python afresh for every call gets a
//! fresh thread state each time, so a handler's `threading.local` (an HTTP client per thread,
//! a database connection) would be rebuilt on every call. These threads enter Python once,
//! release the GIL, and take it back only while they run a call. When the run is over the
//! engine [`shuts`](Pool::shutdown) the pool and waits (GIL released) for idle threads to
//! leave Python, so none is still inside it when the interpreter exits. A thread that takes
//! the GIL for a call also runs the calls that queued meanwhile before it lets the GIL go
//! (a call that blocks in Python releases the GIL as usual; the interpreter's switch
//! interval keeps other threads served).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// How many pool threads are alive, and a condition to wait for that to reach zero.
type Live = Arc<(Mutex<usize>, Condvar)>;

/// A pool of at most `cap` handler threads.
pub(crate) struct Pool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    threads: AtomicUsize,
    idle: Arc<AtomicUsize>,
    live: Live,
    cap: usize,
}

/// A job that is already waiting, if the queue is free to look (an idle thread blocked on
/// it holds the lock, and will take the job itself).
fn queued(rx: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    rx.try_lock().ok()?.try_recv().ok()
}

impl Pool {
    /// An empty pool that grows to `cap` threads.
    pub(crate) fn new(cap: usize) -> Self {
        let (tx, rx) = mpsc::channel();
        Pool {
            tx: Mutex::new(Some(tx)),
            rx: Arc::new(Mutex::new(rx)),
            threads: AtomicUsize::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
            live: Arc::new((Mutex::new(0), Condvar::new())),
            cap: cap.max(1),
        }
    }

    /// Runs `f` on a pool thread; the receiver gets its result, or is dropped when the pool
    /// has been shut down.
    pub(crate) fn run<F, R>(&self, f: F) -> oneshot::Receiver<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let Ok(sender) = self.tx.lock() else {
            return rx;
        };
        let Some(sender) = sender.as_ref() else {
            return rx;
        };
        if self.idle.load(Ordering::Acquire) == 0 && self.threads.load(Ordering::Acquire) < self.cap
        {
            self.spawn();
        }
        let _ = sender.send(Box::new(move || {
            let _ = tx.send(f());
        }));
        rx
    }

    /// Stops taking calls and waits up to `grace` (call it with the GIL released) for the
    /// threads to leave Python; a thread still inside a handler leaves when it returns.
    pub(crate) fn shutdown(&self, grace: Duration) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let (count, cv) = &*self.live;
        if let Ok(guard) = count.lock() {
            let _ = cv.wait_timeout_while(guard, grace, |n| *n > 0);
        }
    }

    fn spawn(&self) {
        let n = self.threads.fetch_add(1, Ordering::AcqRel);
        let rx = Arc::clone(&self.rx);
        let idle = Arc::clone(&self.idle);
        let live = Arc::clone(&self.live);
        if let Ok(mut c) = live.0.lock() {
            *c += 1;
        }
        let gone = Arc::clone(&live);
        let spawned = std::thread::Builder::new()
            .name(format!("ferry-handler-{n}"))
            .spawn(move || {
                Python::with_gil(|py| {
                    py.allow_threads(|| loop {
                        idle.fetch_add(1, Ordering::AcqRel);
                        let job = rx
                            .lock()
                            .map_err(|_| ())
                            .and_then(|r| r.recv().map_err(|_| ()));
                        idle.fetch_sub(1, Ordering::AcqRel);
                        match job {
                            // The GIL is taken once for this call and every call that
                            // queued meanwhile (each would wait for a thread otherwise):
                            // one hand-over of the GIL instead of one per call.
                            Ok(job) => Python::with_gil(|_| {
                                job();
                                while let Some(next) = queued(&rx) {
                                    next();
                                }
                            }),
                            // The pool is shut: the run is over.
                            Err(()) => break,
                        }
                    })
                });
                let (count, cv) = &*live;
                if let Ok(mut c) = count.lock() {
                    *c = c.saturating_sub(1);
                }
                cv.notify_all();
            });
        if spawned.is_err() {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            if let Ok(mut c) = gone.0.lock() {
                *c = c.saturating_sub(1);
            }
        }
    }
}
