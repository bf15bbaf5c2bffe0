//! WebSockets that follow one job: the batch API's `GET /api/v1/batch/ws/{job_id}` and
//! `GET /v1/jobs/{id}/ws` (the same feed, each message the `/v1` job object).
//!
//! Every text message is the JSON body `GET /api/v1/batch/status/{job_id}` answers (`job_id`,
//! `status`, `progress_percentage`, …): one on connect, then one whenever that body changes.
//! The feed polls the store every [`POLL`], so it follows a job whichever process runs its
//! worker (`ferry worker` elsewhere included). Once it has sent a finished state
//! (`completed`, `failed`, `cancelled`) it closes with code 1000 and the reason
//! `job <status>`.
//!
//! An unknown job (or another tenant's: see [`Tenant`]) is a 404 problem before the upgrade,
//! as `status/{job_id}` answers; a request for a known job that is not a WebSocket handshake
//! is a 4xx problem. After the upgrade, a job that disappears (swept by the result TTL)
//! closes with 4404 `job no longer exists`, and a store failure with 1011 (the client may
//! reconnect), and when the server shuts down with 1001. Messages from the client are
//! ignored; its close ends the feed.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use ferry_store::{JobId, JobRecord};
use serde_json::Value;

use super::lookup::find;
use super::path::IdPath;
use super::problem::Problem;
use super::shapes::batch::JobStatusBody;
use super::shapes::job::Job;
use super::state::AppState;
use super::tenant::Tenant;

/// How often the feed reads the job from the store.
const POLL: Duration = Duration::from_millis(100);

/// How long the feed waits for the client's close reply after its own close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How a feed renders a job: the batch API's status body, or the `/v1` job.
type Render = fn(&JobRecord) -> Value;

/// The batch API's WebSocket (see the module docs).
pub(super) async fn status_feed(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let path = format!("/api/v1/batch/ws/{id}");
    open(state, tenant, &id, upgrade, &path, |job| {
        json_value(&JobStatusBody::from(job))
    })
    .await
}

/// `GET /v1/jobs/{id}/ws`: the same feed with the `/v1` job object (as `GET /v1/jobs/{id}`
/// answers) as each message; the WebSocket twin of `/v1/jobs/{id}/events`.
pub(super) async fn job_feed(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let path = format!("/v1/jobs/{id}/ws");
    open(state, tenant, &id, upgrade, &path, |job| {
        json_value(&Job::from(job))
    })
    .await
}

/// Finds the tenant's job (404 before any upgrade), then upgrades to a feed rendered by
/// `render`.
async fn open(
    state: AppState,
    tenant: Tenant,
    id: &JobId,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    path: &str,
    render: Render,
) -> Result<Response, Problem> {
    let job = find(&state, &tenant, id).await?;
    let upgrade = upgrade.map_err(|e| {
        Problem::new(
            e.status(),
            "Not a WebSocket Handshake",
            format!("`{path}` is a WebSocket: {}", e.body_text()),
        )
    })?;
    Ok(upgrade.on_upgrade(move |socket| feed(socket, state, tenant, job, render)))
}

/// `body` as a JSON value (the feed compares it with the previous message).
fn json_value(body: &impl serde::Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// Sends `job`'s status and its changes until it finishes or the client leaves.
async fn feed(
    mut socket: WebSocket,
    state: AppState,
    tenant: Tenant,
    mut job: JobRecord,
    render: Render,
) {
    let mut sent = Value::Null;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // The first tick is immediate; the job was just read.
    loop {
        let body = render(&job);
        if body != sent {
            if socket
                .send(Message::Text(body.to_string().into()))
                .await
                .is_err()
            {
                return; // The client is gone.
            }
            sent = body;
        }
        if job.status.is_finished() {
            close(socket, 1000, format!("job {}", job.status.as_str())).await;
            return;
        }
        // Until the next poll, watch for the client leaving (pings are answered by the
        // library; other messages are ignored).
        loop {
            tokio::select! {
                _ = tick.tick() => break,
                _ = state.shutdown.cancelled() => {
                    close(socket, 1001, "server shutting down".into()).await;
                    return;
                }
                message = socket.recv() => match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
        job = match state.store.job(tenant.as_str(), &job.id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                close(socket, 4404, "job no longer exists".into()).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, job = %job.id.as_str(), "status feed: reading the job");
                close(socket, 1011, "the store failed; reconnect".into()).await;
                return;
            }
        };
    }
}

/// Closes with `code` and `reason`, then waits a moment for the client's reply so that the
/// close is clean on its side too.
async fn close(mut socket: WebSocket, code: u16, reason: String) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}
