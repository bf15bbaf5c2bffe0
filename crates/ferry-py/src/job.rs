//! `ferry.run_job(path, **overrides)`: a job file run in-process by `ferry-connectors`' loader
//! and runner (what `ferry run` does), with progress handed to a Python callback on the
//! calling thread (what a Streamlit or Jupyter page needs) and the report returned as a dict.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_connectors::job::{self, LoadOptions, RunOptions, RunSummary};
use ferry_core::Progress;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::watch;

use crate::convert;

/// The progress channel, once the runner has started the engine.
type Watch = Arc<Mutex<Option<watch::Receiver<Progress>>>>;

fn last_progress(w: &Watch) -> Option<Progress> {
    w.lock()
        .ok()
        .and_then(|g| g.as_ref().map(|rx| rx.borrow().clone()))
}

fn summary_dict<'py>(py: Python<'py>, s: &RunSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = convert::report(py, &s.report)?;
    d.set_item("skipped", s.skipped)?;
    d.set_item("ambiguous", s.ambiguous)?;
    d.set_item(
        "checkpoint",
        s.checkpoint.as_ref().map(|p| p.display().to_string()),
    )?;
    d.set_item("source_error", &s.source_error)?;
    Ok(d)
}

/// Runs the job file at `path` to its end and returns the report as a dict. `sets` are
/// `key=value` overrides (as `ferry run --set`); `on_progress(dict)` is called on this thread
/// every `progress_interval` seconds. Ctrl-C stops the run and raises `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(signature = (path, sets = Vec::new(), max_concurrent = None, on_progress = None, progress_interval = 0.25, resume = false, restart = false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_job<'py>(
    py: Python<'py>,
    path: PathBuf,
    sets: Vec<String>,
    max_concurrent: Option<usize>,
    on_progress: Option<Py<PyAny>>,
    progress_interval: f64,
    resume: bool,
    restart: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = LoadOptions {
        sets,
        max_concurrent,
        ..Default::default()
    };
    let config = job::load(&path, &opts).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ferry-job")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a runtime: {e}")))?;
    let watch: Watch = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let run_opts = RunOptions {
        resume,
        restart,
        ..Default::default()
    };
    let slot = Arc::clone(&watch);
    let task = runtime.spawn(async move {
        let result = job::run(&config, &run_opts, move |progress| {
            if let Ok(mut s) = slot.lock() {
                *s = Some(progress);
            }
            async {}
        })
        .await
        .map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    let interval = Duration::try_from_secs_f64(progress_interval.max(0.01))
        .unwrap_or(Duration::from_millis(250));
    let mut rx = rx;
    let result = loop {
        let (back, received) = py.allow_threads(move || {
            let r = rx.recv_timeout(interval);
            (rx, r)
        });
        rx = back;
        match received {
            Ok(r) => break r,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("the job's task ended without a result".to_owned())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let interrupted = py.check_signals().err();
        if let (Some(cb), Some(p)) = (&on_progress, last_progress(&watch)) {
            cb.call1(py, (convert::progress(py, &p)?,))?;
        }
        if let Some(e) = interrupted {
            task.abort();
            runtime.shutdown_background();
            return Err(e);
        }
    };
    runtime.shutdown_background();
    let summary = result.map_err(PyRuntimeError::new_err)?;
    if let Some(cb) = &on_progress {
        cb.call1(py, (convert::progress(py, &summary.report.progress)?,))?;
    }
    summary_dict(py, &summary)
}
