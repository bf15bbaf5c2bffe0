//! The one error type of `ferry-server`.

/// Everything that can go wrong in the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] ferry_core::Error),
}
