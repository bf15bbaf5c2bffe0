//! # ferry-sim
//!
//! A monday.com-style GraphQL API simulator, for Ferry's tests, examples and benchmarks: the
//! board updater of seed 000 sends `change_multiple_column_values` mutations as aliases, 15
//! per request, and this is the API it meets, with its limits made explicit and tunable:
//! parallel processing slots, a per-request and per-mutation cost, a request timeout, a
//! fixed-window rate limit, injected `500`s and dropped connections, and poison values that
//! fail one alias. It records what was applied, per item, so a client's claims (nothing
//! lost, nothing applied twice) can be checked, and it knows its own throughput ceiling
//! ([`SimConfig::ceiling`]).
//!
//! The wire protocol (all bodies JSON):
//!
//! | request | answer |
//! |---|---|
//! | `POST /v2` without `Authorization` | `401` `{"error_message":"Not Authenticated"}` |
//! | over the rate limit | `429`, `Retry-After: 1`, `{"error_message":"Rate limit exceeded","retry_in_seconds":1}` |
//! | body not `{"query": ...}` | `400` `{"errors":[{"message":"Invalid GraphQL request body: ..."}]}` |
//! | query not the supported shape | `200` `{"errors":[{"message":"Parse error on line L, column C: ..."}]}` |
//! | cost over `request_timeout` | after `request_timeout`: `504` `{"error_message":"Request timed out"}` |
//! | `error_rate` draw | `500` `{"error_message":"Internal server error"}` |
//! | `drop_rate` draw | applied, then the connection closes with no response |
//! | otherwise | `200` `{"data":{"a0":{"id":"123"},"a1":null},"errors":[{"message":"invalid value for column country: INVALID","path":["a1"],"extensions":{"code":"ColumnValueException"}}]}` (`errors` only if an alias was poisoned) |
//! | `GET /stats` | `200` [`Stats`] |
//! | `POST /reset` | `200` `{"reset":true}` |
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let sim = ferry_sim::spawn(ferry_sim::SimConfig::default()).await?;
//! println!("POST {} (ceiling {:.0} items/s)", sim.url(), sim.config().ceiling());
//! // ... run a client against sim.url() ...
//! let stats = sim.stats();
//! assert!(stats.items.values().all(|item| item.applies == 1));
//! sim.shutdown().await
//! # }
//! ```

mod client;
mod columns;
mod config;
mod conn;
mod error;
mod graphql;
mod limits;
mod profile;
mod server;
mod state;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::{AppTransport, FixedClient, Reply, Report, Transport, Work};
pub use columns::{default_board, Column, ColumnType};
pub use config::{Budget, Plan, SimConfig};
pub use profile::Profile;
pub use error::Error;
pub use server::{app, serve, serve_with};
pub use state::{ItemStats, SimState, Stats};

/// Starts a simulator with `config` on `127.0.0.1` and a free port, in a background task.
/// Fails if `config` is invalid (`InvalidInput`) or the port cannot be bound.
pub async fn spawn(config: SimConfig) -> io::Result<Simulator> {
    let state = SimState::new(config)?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    // The sender going away (a drop of the handle) also resolves `stopped`.
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(serve_with(state.clone(), listener, shutdown));
    Ok(Simulator {
        addr,
        state,
        stop,
        task,
    })
}

/// A running simulator, from [`spawn`]. Dropping it stops the server (in the background);
/// [`shutdown`](Self::shutdown) stops it and waits.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    state: SimState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl Simulator {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The GraphQL endpoint, `http://127.0.0.1:PORT/v2`.
    pub fn url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    /// The server's root, `http://127.0.0.1:PORT` (for `/stats` and `/reset`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        self.state.config()
    }

    /// What it has seen and applied, read directly (same content as `GET /stats`).
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Clears its state, as `POST /reset` does.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// The shared state, e.g. to keep reading stats after the handle is gone.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops accepting connections, lets the requests in flight finish (a timed-out request
    /// holds its slot for the whole `request_timeout`), and waits for the server to end.
    pub async fn shutdown(self) -> io::Result<()> {
        let Simulator { stop, task, .. } = self;
        let _ = stop.send(());
        task.await.map_err(io::Error::other)?
    }
}
