//! # ferry-py
//!
//! Ferry for Python: the native module `ferry._ferry` behind the Python package `ferry`
//! (`python/ferry/`). It owns the bridge, and nothing of the engine: a Python callable becomes
//! a [`ferry_core::Handler`] (`handler`), payloads stay Python objects (`payload`), keyword settings become an
//! [`EngineConfig`](ferry_core::EngineConfig) (`settings`), a running engine is driven from
//! Python threads or an asyncio loop (`engine`), job files run in-process through
//! `ferry-connectors` (`job`), sync handlers run on threads of their own (`pool`), and progress and reports become Python dicts (`convert`).
//!
//! Python callbacks are called with the GIL held and nothing else held; Rust work (the
//! engine's event loop, waiting on back-pressure, waiting for the end of a run) runs with the
//! GIL released. A Python exception that crosses into Rust becomes an outcome value, never a
//! panic.
//!
//! The thin typed layer (`Engine`, `Report`, `Retry`/`Split`/`Fatal`, the seed-style
//! `BatchStateManager`) is Python, in `python/ferry/`; its stubs are `_ferry.pyi`.

mod convert;
mod engine;
mod handler;
mod job;
mod payload;
mod pool;
mod settings;

use pyo3::prelude::*;

/// The native module `ferry._ferry`.
#[pymodule]
fn _ferry(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::NativeEngine>()?;
    m.add_class::<handler::Notify>()?;
    m.add_function(wrap_pyfunction!(job::run_job, m)?)?;
    m.add_function(wrap_pyfunction!(settings::setting_names, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
