//! Engine values as Python dicts: [`Progress`] snapshots and the end [`Report`]. Durations
//! become float seconds; the Python layer wraps the dicts in typed objects
//! (`ferry.Progress`, `ferry.Report`).

use std::time::Duration;

use ferry_core::{Progress, Report};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A progress snapshot as a dict with the field names of [`Progress`].
pub(crate) fn progress<'py>(py: Python<'py>, p: &Progress) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("accepted", p.accepted)?;
    d.set_item("succeeded", p.succeeded)?;
    d.set_item("dead_lettered", p.dead_lettered)?;
    d.set_item("cancelled", p.cancelled)?;
    d.set_item("in_flight", p.in_flight)?;
    d.set_item("executing", p.executing)?;
    d.set_item("calls_in_flight", p.calls_in_flight)?;
    d.set_item("calls", p.calls)?;
    d.set_item("retries", p.retries)?;
    d.set_item("splits", p.splits)?;
    d.set_item("timeouts", p.timeouts)?;
    d.set_item("total", p.total)?;
    d.set_item("rate", p.rate)?;
    d.set_item("elapsed", secs(p.elapsed))?;
    d.set_item("eta", p.eta.map(secs))?;
    d.set_item("concurrency_limit", p.concurrency_limit)?;
    d.set_item("batch_size", p.batch_size)?;
    d.set_item("finished", p.finished)?;
    d.set_item("fraction", p.fraction())?;
    Ok(d)
}

/// The end report as a dict: the final progress under `progress`, the rest flat, and the
/// report's text (what `ferry run` prints) under `text`.
pub(crate) fn report<'py>(py: Python<'py>, r: &Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("progress", progress(py, &r.progress)?)?;
    d.set_item("elapsed", secs(r.elapsed))?;
    d.set_item("items_per_sec", r.items_per_sec)?;
    d.set_item("p50", secs(r.dispatch.p50))?;
    d.set_item("p95", secs(r.dispatch.p95))?;
    d.set_item("p99", secs(r.dispatch.p99))?;
    d.set_item("busy_share", r.dispatch.busy_share)?;
    d.set_item("final_concurrency", r.final_concurrency)?;
    d.set_item("final_batch_size", r.final_batch_size)?;
    d.set_item("peak_concurrency", r.peak_concurrency)?;
    d.set_item("dead_letter_sink", &r.dead_letters)?;
    d.set_item("text", r.to_string())?;
    Ok(d)
}
