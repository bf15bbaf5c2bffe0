//! # ferry-sim
//!
//! A monday.com-style GraphQL API simulator, for Ferry's tests, examples and benchmarks: the
//! monday.com board updater sends `change_multiple_column_values` mutations as aliases, 15
//! per request, and this is the API it meets, with its limits made explicit and tunable:
//! parallel processing slots, a per-request and per-mutation cost, a request timeout, a
//! gateway timeout that counts queueing, a fixed-window or token-bucket rate limit, a
//! complexity budget, injected `500`s and dropped connections, poison values, and a board
//! whose typed columns reject wrongly shaped values. It records what was applied, per item,
//! so a client's claims (nothing lost, nothing applied twice) can be checked, and it knows
//! its own throughput ceiling ([`SimConfig::ceiling`]) and the plan that reaches it
//! ([`SimConfig::plan`]).
//!
//! ## Profiles
//!
//! `ferry-sim --profile NAME` ([`Profile`]) models a gateway as real ones behave; every
//! profile prints its settings and its ceiling at start and shows them in `GET /stats`
//! (`profile`). The faults common to all are flags: `--error-rate 0.02 --drop-rate 0.01`
//! (2 % `500`s, 1 % connections dropped after the change was applied).
//!
//! | profile | what it models | ceiling |
//! |---|---|---|
//! | `default` | 4 slots, 40 ms + 20 ms per mutation, 500 ms timeout, 10 requests per 1 s window, poison names its alias, values taken as text | 184 items/s |
//! | `gateway-queue` | 8 slots, 80 ms + 60 ms per mutation, behind a gateway that answers `504` 1.5 s after arrival, queueing included, while the request keeps (or later takes) its slot for its whole cost and is applied | 126 items/s |
//! | `gateway-queue-small` | the same with 3 slots and a 1.0 s gateway timeout | 45.9 items/s |
//! | `token-bucket` | 12 slots, a token bucket of 8 requests/s (burst 2) answering `429` with a fractional `Retry-After`, the time to the next token (e.g. `0.12`) | 184 items/s |
//! | `complexity-budget` | 8 slots, 10,000 points per 10 s window (monday.com's 60 s scaled down), 10 per request + 10 per mutation; a request that would overdraw it gets `200` with `COMPLEXITY_BUDGET_EXHAUSTED` and `retry_in_seconds`, nothing applied | 94.3 items/s |
//! | `poison` | the default limits, but a poisoned row fails its whole request with an error naming no alias, so a client must bisect | 184 items/s (without poison) |
//!
//! Every profile but `default` checks values per column type ([`ColumnType`]) as
//! monday.com does. The `default` profile takes every value as text, so clients that send
//! plain strings (`"date4": "2025-01-02"`) keep working.
//!
//! ## The board
//!
//! [`default_board`] is the board of the monday.com board updater: `date4` is a date column
//! and `country` a country column (its job file maps `fob_date` and `country_of_origin` to
//! them), beside `name`, `status`, `text`, `long_text`, `numbers`, `email` and `person`
//! (people). `--column ID:TYPE[:TITLE]` replaces it.
//!
//! ## The fixed client
//!
//! [`FixedClient`] (binary `ferry-sim-client`) is the benchmark's baseline: told a
//! profile's [`Plan`] (batch size, concurrency, request rate), it sends the board-update
//! work ([`Work`]) and resends after back-pressure without giving items up.
//!
//! ## The wire protocol (all bodies JSON)
//!
//! | request | answer |
//! |---|---|
//! | `POST /v2` without `Authorization` | `401` `{"error_message":"Not Authenticated"}` |
//! | over the rate limit (fixed window) | `429`, `Retry-After: 1`, `{"error_message":"Rate limit exceeded","retry_in_seconds":1}` |
//! | over the rate limit (token bucket) | `429`, `Retry-After: 0.12`, `{"error_message":"Rate limit exceeded","retry_in_seconds":0.12}` |
//! | body not `{"query": ...}` | `400` `{"errors":[{"message":"Invalid GraphQL request body: ..."}]}` |
//! | query not a supported shape | `200` `{"errors":[{"message":"Parse error on line L, column C: ..."}]}` |
//! | `query { boards(ids: [1]) { columns { id type title } } }` | `200` `{"data":{"boards":[{"columns":[{"id":"date4","type":"date","title":"FOB Date"},...]}]}}` |
//! | over the complexity budget | `200` `{"errors":[{"message":"Complexity budget exhausted, query cost 240 budget remaining 20 out of 10000 reset in 7 seconds","extensions":{"code":"COMPLEXITY_BUDGET_EXHAUSTED","complexity":240,"complexity_budget_left":20,"complexity_budget_limit":10000,"retry_in_seconds":7}}]}` |
//! | not done `gateway_timeout` after arrival | `504` `{"error_message":"Gateway Timeout"}` (the work goes on and is applied) |
//! | cost over `request_timeout` | after `request_timeout`: `504` `{"error_message":"Request timed out"}` |
//! | `error_rate` draw | `500` `{"error_message":"Internal server error"}` |
//! | `drop_rate` draw | applied, then the connection closes with no response |
//! | a poisoned row, `poison_unnamed` | `200` `{"errors":[{"message":"invalid value, ...","extensions":{"code":"ColumnValueException"}}]}`, no `path`, nothing applied |
//! | otherwise | `200` `{"data":{"a0":{"id":"123"},"a1":null},"errors":[{"message":"invalid value for column country: INVALID","path":["a1"],"extensions":{"code":"ColumnValueException"}}]}` (`errors` only for rejected aliases: poison, or with `check_values` a wrongly shaped value, whose error adds `error_data` naming the column and its type) |
//! | `GET /stats` | `200` [`Stats`] and `profile` (settings, plan, ceiling) |
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
pub use error::Error;
pub use profile::Profile;
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
