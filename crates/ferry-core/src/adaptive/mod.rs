//! Controllers that learn how hard to push a target nobody described to us.
//!
//! [`ConcurrencyController`] sets how many calls are in flight (AIMD on latency and
//! back-pressure, after Vector's adaptive request concurrency); [`BatchSizeController`] sets
//! how many items a fresh batch carries (toward a target latency, below a learned ceiling).
//! Both are plain state machines fed with observations and the current time, so they are
//! tested with scripted inputs and run inside the engine's single event loop.

mod batch_size;
mod concurrency;
mod ewma;
mod rate;

pub use batch_size::{BatchSizeConfig, BatchSizeController};
pub use concurrency::{ConcurrencyConfig, ConcurrencyController, Signal};
pub use ewma::MeanVar;
pub use rate::{RateConfig, RateController};

use crate::error::Error;

/// Checks `1 <= min <= initial <= max`, naming the keys of the offending value.
pub(crate) fn validate_bounds(
    (min, initial, max): (usize, usize, usize),
    [min_key, initial_key, max_key]: [&'static str; 3],
) -> Result<(), Error> {
    if min == 0 {
        return Err(Error::config(min_key, "must be at least 1"));
    }
    if max < min {
        return Err(Error::config(
            max_key,
            format!("must be at least {min_key} ({min}), got {max}"),
        ));
    }
    if !(min..=max).contains(&initial) {
        return Err(Error::config(
            initial_key,
            format!("must lie in [{min}, {max}], got {initial}"),
        ));
    }
    Ok(())
}
