//! The HTTP API: [`app`] builds the `Router` from an [`AppState`]; the service and the tests
//! share it.
//!
//! Where things live, each module depending only on those below it in this list (no module
//! uses one that uses it back):
//!
//! - [`openapi`](self) (`/openapi.json`) reads the routes' annotations; [`router`](self)
//!   assembles the routes;
//! - the routes: `v1` (`/v1/...`), `batch` (the KubeSentiment-compatible
//!   `/api/v1/batch/...`), `events` (SSE), `ws` (WebSockets), `ops` (health, readiness,
//!   `/metrics`), `dashboard`;
//! - what they share: `shapes` (every JSON body, typed), `lookup` (the caller's job or
//!   404), `path`, `body` (request extractors), `auth` ([`Tenant`]), `limits`
//!   ([`TenantRate`]), `key_watch` ([`RECHECK`]), `eta` (the batch API's estimates),
//!   `state` ([`AppState`]), `clock`
//!   ([`ApiClock`]), `problem` ([`Problem`]).

mod auth;
mod batch;
mod body;
mod clock;
mod dashboard;
mod eta;
mod events;
mod key_watch;
mod limits;
mod lookup;
mod openapi;
mod ops;
mod path;
mod problem;
mod router;
mod shapes;
mod state;
mod tenant;
mod v1;
mod ws;

pub use body::JsonBody;
pub use clock::ApiClock;
pub use key_watch::RECHECK;
pub use limits::{TenantQuotas, TenantRate};
pub use problem::Problem;
pub use router::app;
pub use state::AppState;
pub use tenant::Tenant;
