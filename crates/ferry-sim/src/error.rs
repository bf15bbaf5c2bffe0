//! The crate's one error type. The simulator's own failures are few: a bad setting, or an
//! I/O error from the listener (reported as [`std::io::Error`] by the serving functions).

/// What can go wrong setting up a simulator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`SimConfig`](crate::SimConfig) field is out of range.
    #[error("invalid simulator setting `{key}`: {reason}")]
    InvalidConfig {
        /// The field's name, e.g. `slots`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}
