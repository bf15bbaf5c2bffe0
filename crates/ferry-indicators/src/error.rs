//! The crate's error: why a ticker's data cannot be computed.

/// Why a ticker's indicators cannot be computed (the ticker is dead-lettered with it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A close is NULL (or not a finite number).
    #[error("close is {value} on row {row} ({date}): a ticker needs a close on every row")]
    BadClose {
        /// 1-based row of the ticker's rows.
        row: usize,
        /// The row's date (as the source gave it).
        date: String,
        /// `NULL`, `NaN` or `inf`.
        value: String,
    },
    /// Fewer rows than indicators need.
    #[error("{rows} rows: a ticker needs at least {min} rows of prices")]
    TooFewRows {
        /// The ticker's rows.
        rows: usize,
        /// The minimum ([`crate::MIN_ROWS`]).
        min: usize,
    },
    /// A stored state that cannot be read.
    #[error("stored indicator state cannot be read: {0}")]
    BadState(String),
}
