//! A running engine driven from Python: this module owns the engine's tokio runtime (one per
//! engine; sync handlers run on the handler threads of `pool`, sized to the concurrency
//! cap), the intake Python pushes into, and the hand-over of the end report.
//!
//! Pushing holds the GIL only while an item is built and offered; when the engine is full
//! (back-pressure) the GIL is released while the push waits, in slices, so Ctrl-C is seen.
//! `wait` blocks with the GIL released. An asyncio producer uses `push_nowait` and, when
//! that fails, `push_later`, whose completion is posted back onto its loop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ferry_core::{Engine, Intake, Item, Key, MemoryDeadLetters, Report, Running};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::convert;
use crate::handler::PyHandler;
use crate::payload::Payload;
use crate::pool::Pool;
use crate::settings::{self, priority_from_py, priority_to_py};

/// Payloads `push_many` takes per chunk: one list, one GIL hold, one GIL release, one
/// message to the engine. (A list of 8,192 references is 64 KiB, under the allocator's
/// threshold for mapping memory afresh.)
const CHUNK: usize = 8192;
/// Intake capacity per priority unless told otherwise: two chunks, so a producer can hand
/// over the next chunk while the engine takes in the last.
const INTAKE_CAPACITY: usize = 2 * CHUNK;
/// How long a blocked push waits before it looks for Ctrl-C.
const SLICE: Duration = Duration::from_millis(100);

/// The run's end, set once by the task that finishes the engine.
type Outcome = Option<Result<Report, String>>;

/// The native engine behind `ferry.Engine`.
#[pyclass(module = "ferry._ferry", frozen)]
pub(crate) struct NativeEngine {
    runtime: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
    intake: Mutex<Option<Intake<Payload>>>,
    running: Mutex<Option<Running<Payload, ()>>>,
    cancel: CancellationToken,
    progress: watch::Receiver<ferry_core::Progress>,
    done: Arc<(Mutex<Outcome>, Condvar)>,
    dead: MemoryDeadLetters<Payload>,
    pool: Option<Arc<Pool>>,
    next_index: AtomicU64,
    default_bytes: usize,
    started: Instant,
}

impl NativeEngine {
    fn intake(&self) -> PyResult<Intake<Payload>> {
        self.intake
            .lock()
            .ok()
            .and_then(|i| i.clone())
            .ok_or_else(|| {
                PyRuntimeError::new_err("the engine is finished and takes no more items")
            })
    }

    fn item(
        &self,
        payload: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        priority: i64,
        size: Option<usize>,
    ) -> PyResult<Item<Payload>> {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let key: ferry_core::Key = match key {
            None => index.into(),
            Some(k) if k.is_none() => index.into(),
            Some(k) => match k.downcast::<PyString>() {
                Ok(s) => s.to_cow()?.as_ref().into(),
                Err(_) => k.str()?.to_cow()?.as_ref().into(),
            },
        };
        let bytes = match size {
            Some(n) => n,
            None => self.bytes_of(payload),
        };
        let payload = Payload::One(Arc::new(payload.clone().unbind()));
        Ok(Item::new(key, index, payload)
            .with_priority(priority_from_py(priority)?)
            .with_bytes(bytes))
    }

    /// A payload's byte size: the length of a str or bytes, else the default.
    fn bytes_of(&self, payload: &Bound<'_, PyAny>) -> usize {
        if let Ok(s) = payload.downcast::<PyString>() {
            s.len().unwrap_or(self.default_bytes)
        } else if let Ok(b) = payload.downcast::<PyBytes>() {
            b.as_bytes().len()
        } else {
            self.default_bytes
        }
    }

    /// Hands over the runs of items `next_run` builds (without the GIL), in order, waiting
    /// without the GIL while the engine is full; the GIL is taken back only to look for
    /// Ctrl-C after a slice without progress.
    fn send(
        &self,
        py: Python<'_>,
        intake: &Intake<Payload>,
        mut next_run: impl FnMut() -> Option<VecDeque<Item<Payload>>> + Send,
    ) -> PyResult<()> {
        let mut items = VecDeque::new();
        loop {
            let result = py.allow_threads(|| loop {
                if items.is_empty() {
                    match next_run() {
                        Some(run) => items = run,
                        None => return Ok(Ok(())),
                    }
                }
                // The timer is made inside the runtime (it needs its clock).
                match self.handle.block_on(async {
                    tokio::time::timeout(SLICE, intake.push_from(&mut items)).await
                }) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Ok(Err(e)),
                    Err(elapsed) => return Err(elapsed),
                }
            });
            match result {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => return Err(PyRuntimeError::new_err(e.to_string())),
                Err(_elapsed) => py.check_signals()?,
            }
        }
    }
}

/// How long the end of a run waits for idle handler threads to leave Python.
const THREADS_GRACE: Duration = Duration::from_secs(2);

impl NativeEngine {
    /// Shuts the handler threads once the run is over, so none is left inside Python.
    fn release_threads(&self, py: Python<'_>) {
        if let Some(pool) = &self.pool {
            py.allow_threads(|| pool.shutdown(THREADS_GRACE));
        }
    }
}

#[pymethods]
impl NativeEngine {
    /// Builds and starts an engine around `handler` (run on `event_loop` when given).
    #[new]
    #[pyo3(signature = (handler, preset = "standard", settings = None, event_loop = None, total = None, intake_capacity = None, default_item_bytes = 64))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        handler: Py<PyAny>,
        preset: &str,
        settings: Option<&Bound<'_, PyDict>>,
        event_loop: Option<Py<PyAny>>,
        total: Option<u64>,
        intake_capacity: Option<usize>,
        default_item_bytes: usize,
    ) -> PyResult<Self> {
        let config = settings::build(preset, settings)?;
        let cap = config.dispatch.concurrency.cap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // One worker: the event loop is the engine's only Rust work (handlers run on
            // the pool), and a second worker only adds hand-offs between threads.
            .worker_threads(1)
            .thread_name("ferry-engine")
            .enable_all()
            .build()
            .map_err(|e| {
                PyRuntimeError::new_err(format!("cannot start the engine's runtime: {e}"))
            })?;
        let handler = PyHandler::new(py, handler, event_loop, cap)?;
        let pool = handler.pool();
        let mut engine =
            Engine::new(config, handler).map_err(|e| PyValueError::new_err(e.to_string()))?;
        // Kept in memory: the Python layer returns them in the report (and writes the
        // JSON Lines file a user asked for, since only Python can encode the payloads).
        let dead = MemoryDeadLetters::new();
        engine = engine.dead_letters(dead.clone());
        if let Some(t) = total {
            engine = engine.total(t);
        }
        engine = engine.intake_capacity(intake_capacity.unwrap_or(INTAKE_CAPACITY));
        let running = {
            let _entered = runtime.enter();
            engine.start()
        };
        Ok(NativeEngine {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            intake: Mutex::new(Some(running.intake())),
            progress: running.progress(),
            cancel: running.cancellation(),
            running: Mutex::new(Some(running)),
            done: Arc::new((Mutex::new(None), Condvar::new())),
            dead,
            pool,
            next_index: AtomicU64::new(0),
            default_bytes: default_item_bytes.max(1),
            started: Instant::now(),
        })
    }

    /// Pushes one payload, blocking (GIL released) while the engine is full.
    #[pyo3(signature = (payload, key = None, priority = 0, size = None))]
    fn push(
        &self,
        py: Python<'_>,
        payload: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        priority: i64,
        size: Option<usize>,
    ) -> PyResult<()> {
        let intake = self.intake()?;
        let item = self.item(payload, key, priority, size)?;
        match intake.try_push(item) {
            Ok(()) => Ok(()),
            Err(item) => {
                let mut item = Some(item);
                self.send(py, &intake, move || {
                    item.take().map(|i| VecDeque::from([i]))
                })
            }
        }
    }

    /// Pushes every payload of an iterable (keys are their positions); returns how many.
    /// Per chunk of payloads, the GIL is held once to copy their references into a list and
    /// read their sizes; the items are built and handed over without it, as one run.
    #[pyo3(signature = (payloads, priority = 0))]
    fn push_many(
        &self,
        py: Python<'_>,
        payloads: &Bound<'_, PyAny>,
        priority: i64,
    ) -> PyResult<u64> {
        let intake = self.intake()?;
        let priority = priority_from_py(priority)?;
        let list = payloads.downcast::<PyList>().ok();
        let mut iter = match list {
            Some(_) => None,
            None => Some(payloads.try_iter()?),
        };
        let mut n = 0usize;
        // An error from the source ends the run of pushes after what was read before it.
        let mut failed = None;
        loop {
            let chunk = match (&list, iter.as_mut()) {
                (Some(l), _) => l.get_slice(n, n.saturating_add(CHUNK)),
                (None, Some(it)) => {
                    let chunk = PyList::empty(py);
                    for p in it.by_ref().take(CHUNK) {
                        match p {
                            Ok(p) => chunk.append(p)?,
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    chunk
                }
                (None, None) => PyList::empty(py),
            };
            let len = chunk.len();
            if len == 0 {
                return failed.map_or(Ok(n as u64), Err);
            }
            // By position: the list's iterator would ask for its length at every step.
            let sizes: Vec<usize> = (0..len)
                .map(|i| {
                    chunk
                        .get_item(i)
                        .map_or(self.default_bytes, |p| self.bytes_of(&p))
                })
                .collect();
            let first = self.next_index.fetch_add(len as u64, Ordering::Relaxed);
            let chunk = Arc::new(chunk.unbind());
            n += len;
            // The items are built without the GIL, and handed over as one run.
            let key = Key::empty();
            let mut built = false;
            self.send(py, &intake, move || {
                if std::mem::replace(&mut built, true) {
                    return None;
                }
                let run = (0..len)
                    .map(|i| {
                        let payload = Payload::InChunk {
                            chunk: Arc::clone(&chunk),
                            at: i as u32,
                        };
                        // Keys are positions: the empty key stands for them (a dead letter
                        // reports its index), so no string is built or counted per item.
                        Item::new(key.clone(), first + i as u64, payload)
                            .with_priority(priority)
                            .with_bytes(sizes[i])
                    })
                    .collect();
                Some(run)
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            py.check_signals()?;
        }
    }

    /// Offers one payload without waiting; `False` when the engine is full.
    #[pyo3(signature = (payload, key = None, priority = 0, size = None))]
    fn push_nowait(
        &self,
        payload: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        priority: i64,
        size: Option<usize>,
    ) -> PyResult<bool> {
        let intake = self.intake()?;
        let item = self.item(payload, key, priority, size)?;
        Ok(intake.try_push(item).is_ok())
    }

    /// Pushes one payload in the background; when it is taken, `event_loop` runs
    /// `callback(None)` (or `callback(message)` if the engine stopped).
    #[pyo3(signature = (payload, key, priority, size, event_loop, callback))]
    #[allow(clippy::too_many_arguments)]
    fn push_later(
        &self,
        payload: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        priority: i64,
        size: Option<usize>,
        event_loop: Py<PyAny>,
        callback: Py<PyAny>,
    ) -> PyResult<()> {
        let intake = self.intake()?;
        let item = self.item(payload, key, priority, size)?;
        self.handle.spawn(async move {
            let result = intake.push(item).await.err().map(|e| e.to_string());
            Python::with_gil(|py| {
                let _ = event_loop.call_method1(py, "call_soon_threadsafe", (callback, result));
            });
        });
        Ok(())
    }

    /// Ends intake: the engine drains what it holds, then the report is ready.
    fn close(&self) {
        if let Ok(mut i) = self.intake.lock() {
            i.take();
        }
        let Some(running) = self.running.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let done = Arc::clone(&self.done);
        self.handle.spawn(async move {
            let result = running.finish().await.map_err(|e| e.to_string());
            let (slot, cv) = &*done;
            if let Ok(mut s) = slot.lock() {
                *s = Some(result);
            }
            cv.notify_all();
        });
    }

    /// Waits up to `timeout` seconds (GIL released) for the end of the run; whether it ended.
    fn wait(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::ZERO);
        let done = Arc::clone(&self.done);
        let ended = py.allow_threads(move || {
            let (slot, cv) = &*done;
            let Ok(guard) = slot.lock() else { return true };
            match cv.wait_timeout_while(guard, timeout, |s| s.is_none()) {
                Ok((g, _)) => g.is_some(),
                Err(_) => true,
            }
        });
        if ended {
            self.release_threads(py);
        }
        ended
    }

    /// Whether the run has ended.
    fn is_done(&self, py: Python<'_>) -> bool {
        let ended = self.done.0.lock().map(|s| s.is_some()).unwrap_or(true);
        if ended {
            self.release_threads(py);
        }
        ended
    }

    /// Cancels the run: intake stops, waiting items are cancelled, in-flight calls get the
    /// shutdown grace.
    fn cancel(&self) {
        self.cancel.cancel();
        // Closing also starts the drain when cancel comes before close.
        self.close();
    }

    /// The latest progress snapshot.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.progress.borrow().clone();
        convert::progress(py, &p)
    }

    /// The end report (after `wait` returned `True`).
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let slot = self
            .done
            .0
            .lock()
            .map_err(|_| PyRuntimeError::new_err("the engine's state is poisoned"))?;
        match slot.as_ref() {
            Some(Ok(r)) => convert::report(py, r),
            Some(Err(e)) => Err(PyRuntimeError::new_err(format!("the engine failed: {e}"))),
            None => Err(PyRuntimeError::new_err("the run has not ended yet")),
        }
    }

    /// The dead letters: dicts of key, index, priority, payload, error, attempts.
    fn dead_letters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for l in self.dead.snapshot() {
            let d = PyDict::new(py);
            let payload = l.item.payload();
            if payload.in_chunk() {
                d.set_item("key", l.item.index().to_string())?;
            } else {
                d.set_item("key", l.item.key().as_str())?;
            }
            d.set_item("index", l.item.index())?;
            d.set_item("priority", priority_to_py(l.item.priority()))?;
            d.set_item("payload", payload.bind(py)?)?;
            d.set_item("error", &l.error)?;
            d.set_item("attempts", l.attempts)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Seconds since the engine started (a monotonic clock for the Python layer).
    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl Drop for NativeEngine {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(pool) = self.pool.take() {
            Python::with_gil(|py| py.allow_threads(|| pool.shutdown(THREADS_GRACE)));
        }
        // Blocking threads may wait for the GIL that the dropping thread holds: never wait
        // for them here.
        if let Some(rt) = self.runtime.lock().ok().and_then(|mut r| r.take()) {
            rt.shutdown_background();
        }
    }
}
