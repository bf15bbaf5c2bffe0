//! The one error type of `ferry-server`.

use std::net::SocketAddr;

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
    /// The store's API keys could not be read at start.
    #[error("reading the API keys")]
    Keys(#[source] ferry_store::Error),
    /// A non-loopback address was asked for while the store holds no live API key.
    #[error(
        "refusing to listen on {addr}: without API keys the service binds to loopback only \
         (create one with `ferry keys create --store {store} TENANT`)"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
        /// The store, as named in the options.
        store: String,
    },
    /// The listening address could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus recorder could not be installed (another one is).
    #[error("installing the Prometheus recorder")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
    /// Serving the API failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The in-process worker failed.
    #[error("the in-process worker failed")]
    Worker(#[source] Box<Error>),
    /// The in-process worker's task panicked.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}
