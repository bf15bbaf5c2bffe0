//! A Python callable as a [`Handler`]: this module owns how a batch is handed to Python and
//! how what comes back (a list of results, `None`, or an exception) becomes a
//! [`BatchOutcome`].
//!
//! A plain callable runs on the handler threads (`pool`), at most the engine's concurrency
//! cap of them, so a handler that blocks (sleeps, waits on a socket) holds one pool
//! thread and never the engine's timers. An `async def` handler runs on the caller's asyncio
//! loop (`asyncio.run_coroutine_threadsafe`); its completion wakes the engine through
//! [`Notify`]. Either way the GIL is taken only to build the payload list, call, and read the
//! result.
//!
//! The mapping, the same as a Rust handler's: `ferry.Throttled(after=s)` -> `Throttled { after }`
//! (back-pressure: no attempt charged), `ferry.Retry(after=s)` -> `Retry { after }`,
//! `ferry.Split` -> `Split`, `ferry.TooLarge` -> `TooLarge`, `ferry.Fatal` -> `Fatal`, any
//! other exception -> `Retry` without a delay (so it retries, then splits, then dead-letters).
//! In a returned list, an exception instance stands for that item: `ferry.Fatal` -> the item's
//! `Fatal`, any other -> the item's `Retry`; every other value is the item's success.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, ItemOutcome};
use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;
use tokio::sync::oneshot;

use crate::payload::{Payload, Pieces};
use crate::pool::Pool;

/// The outcome classes of `ferry._errors`, looked up once.
struct Classes {
    throttled: Py<PyType>,
    retry: Py<PyType>,
    split: Py<PyType>,
    too_large: Py<PyType>,
    fatal: Py<PyType>,
}

static CLASSES: GILOnceCell<Classes> = GILOnceCell::new();

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let m = py.import("ferry._errors")?;
        let get = |name: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(name)?.downcast_into::<PyType>()?.unbind())
        };
        Ok(Classes {
            throttled: get("Throttled")?,
            retry: get("Retry")?,
            split: get("Split")?,
            too_large: get("TooLarge")?,
            fatal: get("Fatal")?,
        })
    })
}

/// How the callable is run.
pub(crate) enum Mode {
    /// On the handler threads.
    Sync(Arc<Pool>),
    /// On this asyncio loop, via `asyncio.run_coroutine_threadsafe`.
    Async {
        /// The caller's event loop.
        event_loop: Py<PyAny>,
        /// `asyncio.run_coroutine_threadsafe`.
        submit: Py<PyAny>,
    },
}

/// A Python callable that takes a list of payloads.
pub(crate) struct PyHandler {
    func: Arc<Py<PyAny>>,
    mode: Arc<Mode>,
}

impl PyHandler {
    /// The handler threads of a sync handler (the engine shuts them when the run is over).
    pub(crate) fn pool(&self) -> Option<Arc<Pool>> {
        match &*self.mode {
            Mode::Sync(pool) => Some(Arc::clone(pool)),
            Mode::Async { .. } => None,
        }
    }

    /// Wraps `func`; with `event_loop`, `func` is an `async def` run on that loop, else it
    /// runs on at most `threads` handler threads.
    pub(crate) fn new(
        py: Python<'_>,
        func: Py<PyAny>,
        event_loop: Option<Py<PyAny>>,
        threads: usize,
    ) -> PyResult<Self> {
        classes(py)?;
        let mode = match event_loop {
            None => Mode::Sync(Arc::new(Pool::new(threads))),
            Some(event_loop) => Mode::Async {
                event_loop,
                submit: py
                    .import("asyncio")?
                    .getattr("run_coroutine_threadsafe")?
                    .unbind(),
            },
        };
        Ok(PyHandler {
            func: Arc::new(func),
            mode: Arc::new(mode),
        })
    }
}

fn reason_of(err: &Bound<'_, PyAny>) -> String {
    let ty = err
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_owned());
    match err.str() {
        Ok(s) if !s.to_string().is_empty() => format!("{ty}: {s}"),
        _ => ty,
    }
}

fn message_of(err: &Bound<'_, PyAny>) -> String {
    err.getattr("reason")
        .ok()
        .and_then(|r| r.extract::<String>().ok())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| reason_of(err))
}

/// A raised exception as the batch's outcome.
fn classify_error(py: Python<'_>, err: PyErr) -> BatchOutcome<()> {
    let Ok(c) = classes(py) else {
        return BatchOutcome::retry(None, err.to_string());
    };
    let value = err.value(py).clone().into_any();
    let after = || {
        value
            .getattr("after")
            .ok()
            .and_then(|a| a.extract::<Option<f64>>().ok().flatten())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
    };
    // `Throttled` is a `Retry` in Python: asked first.
    if value.is_instance(c.throttled.bind(py)).unwrap_or(false) {
        BatchOutcome::throttled(after(), message_of(&value))
    } else if value.is_instance(c.retry.bind(py)).unwrap_or(false) {
        BatchOutcome::retry(after(), message_of(&value))
    } else if value.is_instance(c.too_large.bind(py)).unwrap_or(false) {
        BatchOutcome::too_large(message_of(&value))
    } else if value.is_instance(c.split.bind(py)).unwrap_or(false) {
        BatchOutcome::split(message_of(&value))
    } else if value.is_instance(c.fatal.bind(py)).unwrap_or(false) {
        BatchOutcome::fatal(message_of(&value))
    } else {
        BatchOutcome::retry(None, reason_of(&value))
    }
}

/// A returned value as the batch's outcome: `None` is success for every item, a sequence
/// gives one outcome per item.
fn classify_value(py: Python<'_>, value: &Bound<'_, PyAny>, len: usize) -> BatchOutcome<()> {
    if value.is_none() {
        return BatchOutcome::Done(vec![ItemOutcome::Ok(()); len]);
    }
    let fatal = classes(py).ok().map(|c| c.fatal.bind(py).clone());
    let iter = match value.try_iter() {
        Ok(i) => i,
        Err(_) => {
            return BatchOutcome::fatal(format!(
                "the handler returned {}, expected a list with one result per item, or None",
                reason_of(&value.get_type().into_any())
            ))
        }
    };
    let mut out = Vec::with_capacity(len);
    for v in iter {
        let v = match v {
            Ok(v) => v,
            Err(e) => return classify_error(py, e),
        };
        if v.is_instance_of::<PyBaseException>() {
            let is_fatal = fatal
                .as_ref()
                .is_some_and(|f| v.is_instance(f).unwrap_or(false));
            out.push(if is_fatal {
                ItemOutcome::Fatal(message_of(&v))
            } else {
                ItemOutcome::Retry(message_of(&v))
            });
        } else {
            out.push(ItemOutcome::Ok(()));
        }
    }
    BatchOutcome::Done(out)
}

fn call_sync(func: &Py<PyAny>, payloads: &Pieces) -> BatchOutcome<()> {
    Python::with_gil(|py| {
        let list = match payloads.to_list(py) {
            Ok(l) => l,
            Err(e) => return classify_error(py, e),
        };
        match func.bind(py).call1((list,)) {
            Ok(v) => classify_value(py, &v, payloads.len()),
            Err(e) => classify_error(py, e),
        }
    })
}

/// Called by asyncio (on its loop) when a handler's coroutine is done: wakes the engine.
#[pyclass(module = "ferry._ferry", frozen)]
pub(crate) struct Notify {
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

#[pymethods]
impl Notify {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        if let Some(tx) = self.tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    }
}

/// Cancels the submitted coroutine when the engine gives up on the call (per-attempt
/// timeout, shutdown), so it does not run on unobserved.
struct CancelOnDrop(Option<Py<PyAny>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            Python::with_gil(|py| {
                let _ = f.call_method0(py, "cancel");
            });
        }
    }
}

async fn call_async(func: Arc<Py<PyAny>>, mode: Arc<Mode>, payloads: Pieces) -> BatchOutcome<()> {
    let Mode::Async { event_loop, submit } = &*mode else {
        return BatchOutcome::fatal("internal: not an async handler");
    };
    let (tx, rx) = oneshot::channel();
    let submitted = Python::with_gil(|py| -> PyResult<Py<PyAny>> {
        let coro = func.bind(py).call1((payloads.to_list(py)?,))?;
        let fut = submit.bind(py).call1((coro, event_loop.bind(py)))?;
        let notify = Py::new(
            py,
            Notify {
                tx: Mutex::new(Some(tx)),
            },
        )?;
        fut.call_method1("add_done_callback", (notify,))?;
        Ok(fut.unbind())
    });
    let fut = match submitted {
        Ok(f) => f,
        Err(e) => return Python::with_gil(|py| classify_error(py, e)),
    };
    let mut guard = CancelOnDrop(Some(fut));
    let woke = rx.await;
    let fut = guard.0.take();
    Python::with_gil(|py| {
        let Some(fut) = fut else {
            return BatchOutcome::fatal("internal: lost the handler's future");
        };
        if woke.is_err() {
            return BatchOutcome::retry(None, "the event loop dropped the handler's coroutine");
        }
        match fut.bind(py).call_method0("result") {
            Ok(v) => classify_value(py, &v, payloads.len()),
            Err(e) => classify_error(py, e),
        }
    })
}

impl Handler<Payload, ()> for PyHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Payload>) -> BoxFuture<'a, BatchOutcome<()>> {
        let payloads = Pieces::of(batch);
        let func = Arc::clone(&self.func);
        match &*self.mode {
            Mode::Sync(pool) => {
                let done = pool.run(move || call_sync(&func, &payloads));
                Box::pin(async move {
                    done.await.unwrap_or_else(|_| {
                        BatchOutcome::retry(None, "the handler thread ended before the call did")
                    })
                })
            }
            Mode::Async { .. } => Box::pin(call_async(func, Arc::clone(&self.mode), payloads)),
        }
    }
}
