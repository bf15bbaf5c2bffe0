//! The bounds check both controllers' configurations share.

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
