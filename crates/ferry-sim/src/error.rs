//! The crate's one error type. The simulator's own failures are few: a bad setting, or an
//! I/O error from the listener (reported as [`std::io::Error`] by the serving functions).

use std::fmt;

/// What can go wrong setting up a simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A [`SimConfig`](crate::SimConfig) field is out of range.
    InvalidConfig {
        /// The field's name, e.g. `slots`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig { key, reason } => {
                write!(f, "invalid simulator setting `{key}`: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}
