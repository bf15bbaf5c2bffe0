//! Keyword settings -> [`EngineConfig`]: this module owns the names Python uses for the
//! engine's settings (one per field of `EngineConfig` a user sets), their units (seconds as
//! floats, bytes and counts as ints), the error that names a bad key, and the mapping of
//! Python's priority levels. A preset is applied first, then each setting; the engine's own
//! `validate` runs when the engine is built.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use ferry_core::adaptive::{BatchSizeConfig, ConcurrencyConfig};
use ferry_core::{
    BatchSizing, Concurrency, EngineConfig, MemoryLimits, Priority, RetryPolicy, SplitStrategy,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Every setting `Engine(handler, **settings)` takes, with its unit and meaning.
const SETTINGS: &[(&str, &str)] = &[
    ("name", "str: a name for logs and metric labels"),
    (
        "max_items",
        "int: most items in one batch (the cap of the adaptive size)",
    ),
    ("max_bytes", "int: most bytes in one batch"),
    (
        "max_wait",
        "float s: longest a normal item waits for its batch",
    ),
    (
        "max_wait_high",
        "float s: longest a high-priority item waits",
    ),
    ("max_wait_urgent", "float s: longest an urgent item waits"),
    (
        "memory_high_watermark",
        "int bytes: over this, batches leave early (memory pressure)",
    ),
    ("memory_hard_limit", "int bytes: at this, producers wait"),
    (
        "adaptive_batch_size",
        "bool: learn the batch size toward target_latency",
    ),
    ("batch_size", "int: the starting batch size (adaptive)"),
    ("min_batch_size", "int: the smallest adaptive batch size"),
    (
        "target_latency",
        "float s: the batch latency the adaptive size aims for",
    ),
    (
        "concurrency",
        "int: a fixed number of calls in flight (default adaptive)",
    ),
    (
        "max_concurrency",
        "int: the cap of the adaptive concurrency",
    ),
    (
        "initial_concurrency",
        "int: where the adaptive concurrency starts",
    ),
    ("requests_per_sec", "int: handler calls per second"),
    ("items_per_sec", "int: items per second"),
    ("timeout", "float s: per-attempt timeout"),
    (
        "split_ladder",
        "list[int]: split sizes such as [15, 5, 1] (default bisection)",
    ),
    (
        "pause",
        "float s: a fixed pause between the starts of two calls",
    ),
    (
        "max_attempts",
        "int: failures an item may take before it is dead-lettered",
    ),
    ("backoff_base", "float s: first retry backoff"),
    ("backoff_max", "float s: longest retry backoff"),
    (
        "split_after",
        "int: whole-batch failures before a batch is split",
    ),
    (
        "shutdown_grace",
        "float s: how long in-flight calls may finish after cancel",
    ),
    (
        "progress_interval",
        "float s: how often progress is refreshed",
    ),
    ("seed", "int: seed of the backoff jitter"),
];

/// Python's priority levels, lowest first: `0` normal, `1` high, `2` urgent (the feed
/// buffer's levels), as the engine's priorities, order kept: normal is the engine's `Low`,
/// high its `Medium`, urgent its `High`. [`build`] gives them the feed buffer's waits (normal
/// as long as the preset's default, high a fifth of it, urgent the preset's shortest), so a
/// Python default item is not held the engine's 5 s for `Low`. The one place that names the
/// engine's priority variants.
const LEVELS: [Priority; 3] = [Priority::Low, Priority::Medium, Priority::High];

/// A Python priority level as the engine's [`Priority`].
pub(crate) fn priority_from_py(level: i64) -> PyResult<Priority> {
    usize::try_from(level)
        .ok()
        .and_then(|i| LEVELS.get(i).copied())
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "priority must be 0 (normal), 1 (high) or 2 (urgent), got {level}"
            ))
        })
}

/// The engine's [`Priority`] as a Python priority level.
pub(crate) fn priority_to_py(p: Priority) -> usize {
    LEVELS.iter().position(|l| *l == p).unwrap_or(0)
}

/// The names and meanings of every setting, for `ferry.Engine` docs and errors.
#[pyfunction]
pub(crate) fn setting_names() -> Vec<(&'static str, &'static str)> {
    SETTINGS.to_vec()
}

fn bad(key: &str, message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("setting `{key}`: {message}"))
}

fn seconds(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let s: f64 = v
        .extract()
        .map_err(|_| bad(key, "expects seconds (a number)"))?;
    Duration::try_from_secs_f64(s).map_err(|_| bad(key, format!("{s} is not a valid duration")))
}

fn count(key: &str, v: &Bound<'_, PyAny>) -> PyResult<NonZeroUsize> {
    let n: usize = v
        .extract()
        .map_err(|_| bad(key, "expects a positive int"))?;
    NonZeroUsize::new(n).ok_or_else(|| bad(key, "must be at least 1"))
}

fn rate(key: &str, v: &Bound<'_, PyAny>) -> PyResult<Option<NonZeroU32>> {
    if v.is_none() {
        return Ok(None);
    }
    let n: u32 = v
        .extract()
        .map_err(|_| bad(key, "expects a positive int or None"))?;
    NonZeroU32::new(n)
        .map(Some)
        .ok_or_else(|| bad(key, "must be at least 1 (None for no limit)"))
}

/// Retry settings are built together, since `RetryPolicy` is built whole.
struct RetryParts {
    max_attempts: Option<NonZeroU32>,
    base: Option<Duration>,
    max: Option<Duration>,
    split_after: Option<u32>,
}

/// The preset `preset` with every setting of `settings` applied.
pub(crate) fn build(preset: &str, settings: Option<&Bound<'_, PyDict>>) -> PyResult<EngineConfig> {
    let mut c = EngineConfig::preset(preset).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown preset `{preset}`: expected standard, high_throughput or low_memory"
        ))
    })?;
    let normal = c.flush.wait_for(Priority::Medium);
    let urgent = c.flush.wait_for(Priority::High);
    c.flush = c
        .flush
        .clone()
        .max_wait(LEVELS[0], normal)
        .max_wait(LEVELS[1], (normal / 5).max(urgent))
        .max_wait(LEVELS[2], urgent);
    let mut retry = RetryParts {
        max_attempts: None,
        base: None,
        max: None,
        split_after: None,
    };
    let mut memory = c.flush.memory_limits();
    let mut explicit = Vec::new();
    if let Some(settings) = settings {
        for (k, v) in settings.iter() {
            let key: String = k.extract()?;
            apply(&mut c, &mut memory, &mut retry, &key, &v)?;
            explicit.push(key);
        }
    }
    // A shorter `max_wait` alone lowers the higher priorities' waits with it (they must not
    // wait longer than normal items); waits given explicitly are left to validation.
    for (p, key, above) in [
        (LEVELS[1], "max_wait_high", LEVELS[0]),
        (LEVELS[2], "max_wait_urgent", LEVELS[1]),
    ] {
        if !explicit.iter().any(|k| k == key) {
            let wait = c.flush.wait_for(p).min(c.flush.wait_for(above));
            c.flush = c.flush.clone().max_wait(p, wait);
        }
    }
    // The engine starts a default start above a lower cap at the cap; a start given
    // explicitly above the cap is a mistake worth naming.
    if let Concurrency::Adaptive(a) = &c.dispatch.concurrency {
        if a.initial > a.max && explicit.iter().any(|k| k == "initial_concurrency") {
            return Err(bad(
                "initial_concurrency",
                format!("{} is above max_concurrency ({})", a.initial, a.max),
            ));
        }
    }
    c.flush = c.flush.clone().memory(memory);
    if retry.max_attempts.is_some() || retry.base.is_some() || retry.max.is_some() {
        let defaults = RetryPolicy::default();
        let max_attempts = retry
            .max_attempts
            .or(NonZeroU32::new(defaults.max_attempts()))
            .unwrap_or(NonZeroU32::MIN);
        let base = retry.base.unwrap_or(Duration::from_millis(100));
        let max = retry.max.unwrap_or(Duration::from_secs(30)).max(base);
        c.retry = RetryPolicy::new(max_attempts, base, max)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    if let Some(n) = retry.split_after {
        c.retry = c.retry.clone().split_after(n);
    }
    Ok(c)
}

fn adaptive_size(c: &mut EngineConfig) -> &mut BatchSizeConfig {
    if !matches!(c.sizing, BatchSizing::Adaptive(_)) {
        c.sizing = BatchSizing::Adaptive(BatchSizeConfig::default());
    }
    match &mut c.sizing {
        BatchSizing::Adaptive(s) => s,
        BatchSizing::Fixed => unreachable!("set to adaptive just above"),
    }
}

fn adaptive_concurrency(c: &mut EngineConfig) -> &mut ConcurrencyConfig {
    if !matches!(c.dispatch.concurrency, Concurrency::Adaptive(_)) {
        c.dispatch.concurrency = Concurrency::Adaptive(ConcurrencyConfig::default());
    }
    match &mut c.dispatch.concurrency {
        Concurrency::Adaptive(a) => a,
        Concurrency::Fixed(_) => unreachable!("set to adaptive just above"),
    }
}

fn apply(
    c: &mut EngineConfig,
    memory: &mut MemoryLimits,
    retry: &mut RetryParts,
    key: &str,
    v: &Bound<'_, PyAny>,
) -> PyResult<()> {
    match key {
        "name" => c.name = v.extract().map_err(|_| bad(key, "expects a str"))?,
        "max_items" => c.flush = c.flush.clone().max_items(count(key, v)?),
        "max_bytes" => c.flush = c.flush.clone().max_bytes(count(key, v)?),
        "max_wait" => c.flush = c.flush.clone().max_wait(LEVELS[0], seconds(key, v)?),
        "max_wait_high" => c.flush = c.flush.clone().max_wait(LEVELS[1], seconds(key, v)?),
        "max_wait_urgent" => c.flush = c.flush.clone().max_wait(LEVELS[2], seconds(key, v)?),
        "memory_high_watermark" => memory.high_watermark = count(key, v)?.get(),
        "memory_hard_limit" => memory.hard_limit = count(key, v)?.get(),
        "adaptive_batch_size" => {
            let on: bool = v.extract().map_err(|_| bad(key, "expects a bool"))?;
            if on {
                adaptive_size(c);
            } else {
                c.sizing = BatchSizing::Fixed;
            }
        }
        "batch_size" => adaptive_size(c).initial = count(key, v)?.get(),
        "min_batch_size" => adaptive_size(c).min = count(key, v)?.get(),
        "target_latency" => adaptive_size(c).target_latency = seconds(key, v)?,
        "concurrency" => {
            c.dispatch.concurrency = if v.is_none() {
                Concurrency::Adaptive(ConcurrencyConfig::default())
            } else {
                Concurrency::Fixed(count(key, v)?)
            }
        }
        "max_concurrency" => adaptive_concurrency(c).max = count(key, v)?.get(),
        "initial_concurrency" => adaptive_concurrency(c).initial = count(key, v)?.get(),
        "requests_per_sec" => c.dispatch.rate.requests_per_sec = rate(key, v)?,
        "items_per_sec" => c.dispatch.rate.items_per_sec = rate(key, v)?,
        "timeout" => c.dispatch.timeout = seconds(key, v)?,
        "split_ladder" => {
            if v.is_none() {
                c.dispatch.split = SplitStrategy::Bisect;
            } else {
                let rungs: Vec<usize> = v
                    .extract()
                    .map_err(|_| bad(key, "expects a list of ints"))?;
                c.dispatch.split =
                    SplitStrategy::ladder(&rungs).map_err(|e| bad(key, e.to_string()))?;
            }
        }
        "pause" => {
            c.dispatch.pause = if v.is_none() {
                None
            } else {
                Some(seconds(key, v)?)
            }
        }
        "max_attempts" => {
            let n: u32 = v
                .extract()
                .map_err(|_| bad(key, "expects a positive int"))?;
            retry.max_attempts =
                Some(NonZeroU32::new(n).ok_or_else(|| bad(key, "must be at least 1"))?);
        }
        "backoff_base" => retry.base = Some(seconds(key, v)?),
        "backoff_max" => retry.max = Some(seconds(key, v)?),
        "split_after" => {
            retry.split_after = Some(v.extract().map_err(|_| bad(key, "expects an int"))?)
        }
        "shutdown_grace" => c.shutdown_grace = seconds(key, v)?,
        "progress_interval" => c.progress_interval = seconds(key, v)?,
        "seed" => {
            c.seed = v
                .extract()
                .map_err(|_| bad(key, "expects an int or None"))?
        }
        other => {
            let known: Vec<&str> = SETTINGS.iter().map(|(n, _)| *n).collect();
            return Err(PyTypeError::new_err(format!(
                "unknown setting `{other}`; known settings: {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}
