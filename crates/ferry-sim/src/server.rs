//! The simulator's HTTP face: [`app`] routes `POST /v2`, `GET /stats` and `POST /reset` onto
//! a [`SimState`] and writes monday.com-shaped JSON; [`serve`] and [`serve_with`] run it on a
//! listener whose connections can be dropped on purpose (`drop_rate`).
//!
//! The error bodies mimic the real API, not problem+json: GraphQL errors go in a `200` body
//! (`{"errors":[...]}`), transport-level failures as `{"error_message": ...}`.

use std::future::Future;
use std::io;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::conn::{ConnTag, SimListener};
use crate::graphql::{self, ColumnsQuery, Operation};
use crate::limits::{hundredths, whole_seconds};
use crate::state::{AliasResult, BudgetExhausted, Outcome, Rejection};
use crate::{SimConfig, SimState};

/// The monday.com wording of a column value error.
const INVALID_VALUE: &str = "invalid value, please check our API documentation for the correct data structure for this column";

/// Largest request body read (aliased batches are a few kilobytes).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The simulator's routes over `state`:
///
/// * `POST /v2`: the GraphQL endpoint (see [`SimConfig`] for what happens to a request);
/// * `GET /stats`: the [`Stats`](crate::Stats) as JSON, with the `profile`: its settings,
///   plan and ceiling ([`SimConfig::describe`]);
/// * `POST /reset`: [`SimState::reset`], answers `{"reset":true}`.
///
/// Dropping connections cleanly needs the connection tag that [`serve`] and [`serve_with`]
/// attach. Under another server (plain `axum::serve(listener, app(state))`) a dropped
/// request is answered with a body stream that fails at once; hyper then closes the
/// connection, normally before the head is flushed, so the client sees the same error, or
/// at worst a `200` head followed by a body error.
pub fn app(state: SimState) -> Router {
    Router::new()
        .route("/v2", post(graphql_endpoint))
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .with_state(state)
}

/// Serves a fresh simulator with `config` on `listener` until `shutdown` completes, then
/// finishes the requests in flight. Fails at once if `config` is invalid.
pub async fn serve(
    config: SimConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(SimState::new(config)?, listener, shutdown).await
}

/// Like [`serve`], for a simulator whose `state` the caller keeps (to read its stats).
pub async fn serve_with(
    state: SimState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(
        SimListener(listener),
        app(state).into_make_service_with_connect_info::<ConnTag>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A GraphQL-over-HTTP request body.
#[derive(Debug, Deserialize)]
struct GraphqlRequest {
    query: String,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
}

/// Every answer `POST /v2` can give.
#[derive(Debug)]
enum Reply {
    Unauthorized,
    /// `429`; `Retry-After` and `retry_in_seconds` in whole or fractional seconds.
    RateLimited {
        retry_in_seconds: Value,
    },
    /// `200` with `COMPLEXITY_BUDGET_EXHAUSTED`, nothing applied.
    BudgetExhausted(BudgetExhausted),
    /// `504` from the gateway.
    GatewayTimeout,
    /// `200` with an error naming no alias (`poison_unnamed`), nothing applied.
    Poisoned,
    /// The body was not a GraphQL request (`400`).
    BadRequest(String),
    /// The query did not parse (`200` with `errors`, as GraphQL servers answer).
    ParseError(String),
    /// `{"data": ..., "errors": ...?}`, built by [`data_body`].
    Data(Value),
    TimedOut,
    ServerError,
    /// Applied, but the connection cannot be dropped here: a head, then a failing body.
    BrokenBody,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error_message": "Not Authenticated"})),
            )
                .into_response(),
            Reply::BudgetExhausted(e) => {
                Json(json!({"errors": [budget_error(&e)]})).into_response()
            }
            Reply::GatewayTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                Json(json!({"error_message": "Gateway Timeout"})),
            )
                .into_response(),
            Reply::Poisoned => Json(json!({
                "errors": [{
                    "message": INVALID_VALUE,
                    "extensions": {"code": "ColumnValueException"},
                }],
            }))
            .into_response(),
            Reply::RateLimited { retry_in_seconds } => (
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, retry_in_seconds.to_string())],
                Json(json!({
                    "error_message": "Rate limit exceeded",
                    "retry_in_seconds": retry_in_seconds,
                })),
            )
                .into_response(),
            Reply::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                Json(json!({"errors": [{"message": message}]})),
            )
                .into_response(),
            Reply::ParseError(message) => {
                Json(json!({"errors": [{"message": message}]})).into_response()
            }
            Reply::Data(body) => Json(body).into_response(),
            Reply::TimedOut => (
                StatusCode::GATEWAY_TIMEOUT,
                Json(json!({"error_message": "Request timed out"})),
            )
                .into_response(),
            Reply::ServerError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error_message": "Internal server error"})),
            )
                .into_response(),
            Reply::BrokenBody => {
                let failing = futures_util::stream::once(async {
                    Err::<Bytes, _>(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "ferry-sim dropped the connection (drop_rate)",
                    ))
                });
                (
                    [(CONTENT_TYPE, "application/json")],
                    Body::from_stream(failing),
                )
                    .into_response()
            }
        }
    }
}

/// The error of a request the complexity budget turned away: `COMPLEXITY_BUDGET_EXHAUSTED`
/// with `retry_in_seconds`, or `maxComplexityExceeded` (no retry) for one over the whole
/// budget.
fn budget_error(e: &BudgetExhausted) -> Value {
    let Some(reset_in) = e.reset_in else {
        return json!({
            "message": format!(
                "Query has complexity of {}, which exceeds max complexity of {}",
                e.cost, e.limit
            ),
            "extensions": {"code": "maxComplexityExceeded", "complexity": e.cost, "max_complexity": e.limit},
        });
    };
    let secs = whole_seconds(reset_in);
    json!({
        "message": format!(
            "Complexity budget exhausted, query cost {} budget remaining {} out of {} reset in {secs} seconds",
            e.cost, e.left, e.limit
        ),
        "extensions": {
            "code": "COMPLEXITY_BUDGET_EXHAUSTED",
            "complexity": e.cost,
            "complexity_budget_left": e.left,
            "complexity_budget_limit": e.limit,
            "retry_in_seconds": secs,
        },
    })
}

/// `{"data":{alias: {"id": "..."} | null, ...}, "errors": [...]?}`, aliases in request order.
/// A rejected alias is `null` in `data` and named by an error's `path`.
fn data_body(results: Vec<AliasResult>, poison: &str) -> Value {
    let mut data = Map::with_capacity(results.len());
    let mut errors = Vec::new();
    for r in results {
        let (message, extensions) = match r.rejected {
            None => {
                data.insert(r.alias, json!({"id": r.item_id.to_string()}));
                continue;
            }
            Some(Rejection::Poison { column }) => (
                format!("invalid value for column {column}: {poison}"),
                json!({"code": "ColumnValueException"}),
            ),
            Some(Rejection::Value {
                column,
                kind,
                value,
                message,
            }) => (
                format!("{message} (column {column})"),
                json!({"code": "ColumnValueException", "error_data": {
                    "column_id": column, "column_type": kind.as_str(), "column_value": value.to_string(),
                }}),
            ),
            Some(Rejection::NoColumn { column }) => (
                format!("This column ID doesn't exist for the board: {column}"),
                json!({"code": "InvalidColumnIdException", "error_data": {"column_id": column}}),
            ),
        };
        errors
            .push(json!({"message": message, "path": [r.alias.clone()], "extensions": extensions}));
        data.insert(r.alias, Value::Null);
    }
    let mut body = Map::new();
    body.insert("data".to_owned(), Value::Object(data));
    if !errors.is_empty() {
        body.insert("errors".to_owned(), Value::Array(errors));
    }
    Value::Object(body)
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// `{"data": {"boards": [{"id": "456", "columns": [{"id": ..., "type": ..., "title": ...}]}]}}`,
/// one board per id asked for, each with the simulator's columns, fields as asked.
fn columns_body(q: &ColumnsQuery, config: &SimConfig) -> Value {
    let columns: Vec<Value> = config
        .columns
        .iter()
        .map(|c| {
            let fields = q.column_fields.iter().map(|f| {
                let v = match f.as_str() {
                    "id" => json!(c.id),
                    "type" => json!(c.kind.as_str()),
                    "title" => json!(c.title),
                    "settings_str" => json!("{}"),
                    "archived" => json!(false),
                    _ => Value::Null,
                };
                (f.clone(), v)
            });
            Value::Object(fields.collect())
        })
        .collect();
    let boards: Vec<Value> = q
        .board_ids
        .iter()
        .map(|id| {
            let fields = q.board_fields.iter().map(|f| {
                let v = match f.as_str() {
                    "id" => json!(id.to_string()),
                    "name" => json!(format!("Board {id}")),
                    _ => Value::Array(columns.clone()),
                };
                (f.clone(), v)
            });
            Value::Object(fields.collect())
        })
        .collect();
    json!({"data": {q.key.clone(): boards}})
}

async fn graphql_endpoint(State(state): State<SimState>, request: Request) -> Response {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let conn = parts
        .extensions
        .get::<ConnectInfo<ConnTag>>()
        .map(|ConnectInfo(tag)| tag.clone());
    state.record(|s| s.requests += 1);

    if !authorized(&parts.headers) {
        state.record(|s| s.unauthorized += 1);
        return Reply::Unauthorized.into_response();
    }
    if let Err(wait) = state.admit() {
        state.record(|s| s.rejected_429 += 1);
        let retry_in_seconds = match state.config().token_bucket_burst {
            None => json!(whole_seconds(wait)),
            Some(_) => json!(hundredths(wait)),
        };
        return Reply::RateLimited { retry_in_seconds }.into_response();
    }

    let parsed = match axum::body::to_bytes(body, MAX_BODY).await {
        Err(e) => Err(Reply::BadRequest(format!(
            "Could not read the request body: {e}"
        ))),
        Ok(bytes) => match serde_json::from_slice::<GraphqlRequest>(&bytes) {
            Err(e) => Err(Reply::BadRequest(format!(
                "Invalid GraphQL request body: {e}"
            ))),
            Ok(req) => graphql::parse(&req.query, req.variables.as_ref())
                .map_err(|e| Reply::ParseError(e.to_string())),
        },
    };
    let mutations = match parsed {
        Ok(Operation::Mutations(m)) => m,
        Ok(Operation::Columns(q)) => {
            state.record(|s| s.column_queries += 1);
            return Reply::Data(columns_body(&q, state.config())).into_response();
        }
        Err(reply) => {
            state.record(|s| s.parse_errors += 1);
            return reply.into_response();
        }
    };
    let n = mutations.len();
    if let Err(e) = state.charge(u64::try_from(n).unwrap_or(u64::MAX)) {
        state.record(|s| s.budget_exhausted += 1);
        return Reply::BudgetExhausted(e).into_response();
    }

    let fate = state.draw();
    let outcome = state.process(mutations, fate, arrived).await;
    tracing::debug!(mutations = n, ?outcome, "request processed");
    match outcome {
        Outcome::TimedOut => Reply::TimedOut.into_response(),
        Outcome::GatewayTimeout => Reply::GatewayTimeout.into_response(),
        Outcome::Poisoned => Reply::Poisoned.into_response(),
        Outcome::Failed => Reply::ServerError.into_response(),
        Outcome::Applied(results) => {
            Reply::Data(data_body(results, &state.config().poison_value)).into_response()
        }
        Outcome::Dropped => match conn {
            Some(tag) => {
                tag.drop_connection();
                // Never written: the connection fails on the first write.
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            None => Reply::BrokenBody.into_response(),
        },
    }
}

async fn stats(State(state): State<SimState>) -> Response {
    match state.stats_json() {
        Ok(bytes) => ([(CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => {
            tracing::error!("serializing stats: {e}");
            Reply::ServerError.into_response()
        }
    }
}

async fn reset(State(state): State<SimState>) -> Json<Value> {
    state.reset();
    Json(json!({"reset": true}))
}
