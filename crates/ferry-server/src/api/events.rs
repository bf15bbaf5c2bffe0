//! `GET /v1/jobs/{id}/events`: a job's progress as server-sent events.
//!
//! The feed reads the job from the store every [`POLL`], so it follows a job whichever
//! process runs its worker. Events, each with the job as `GET /v1/jobs/{id}` answers it as
//! `data`:
//!
//! - `progress`: at once, then whenever the job changes (status, counts, timestamps) while it
//!   is unfinished;
//! - `done`: once, when the job is finished (`completed`, `failed`, `cancelled`; at once for
//!   a job that already is); then the stream ends.
//!
//! If the job disappears (swept by the result TTL), the store fails or the server shuts down
//! (503: reconnect to another instance or later), one `error` event
//! carries a problem object (`type`, `title`, `status`, `detail`) and the stream ends; the
//! client may reconnect. A comment line (`: keep-alive`) goes out every [`KEEP_ALIVE`] while
//! nothing changes, so proxies keep the connection open.
//!
//! An unknown job (or another tenant's) is a 404 problem before the stream starts. Browsers'
//! `EventSource` cannot set headers, so this request may carry its API key as the query
//! parameter `api_key` (see [`super::auth`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use ferry_store::JobId;
use futures_util::stream::{self, Stream};
use tokio::time::{Interval, MissedTickBehavior};

use super::lookup::find;
use super::path::IdPath;
use super::problem::Problem;
use super::shapes::job::Job;
use super::state::AppState;
use super::tenant::Tenant;

/// How often the feed reads the job from the store.
const POLL: Duration = Duration::from_millis(200);

/// How often a keep-alive comment goes out while nothing else does.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the feed carries from one event to the next.
struct Feed {
    state: AppState,
    tenant: Tenant,
    id: JobId,
    /// The job as last sent (none before the first event).
    sent: Option<Job>,
    /// The job read but not yet compared (the first read, done before the stream starts).
    read: Option<Job>,
    tick: Interval,
    ended: bool,
}

/// A job's progress as server-sent events, until it finishes (see the module docs).
#[utoipa::path(
    get, path = "/v1/jobs/{id}/events", tag = "jobs", operation_id = "job_events",
    params(
        ("id" = String, Path, description = "The job's id"),
        ("api_key" = Option<String>, Query,
         description = "The API key, for clients that cannot set headers (`EventSource`); \
                        honoured only with `Accept: text/event-stream`"),
    ),
    responses(
        (status = 200, description = "Events `progress` (the job, whenever it changes) and a \
                                      final `done` (the finished job), then the stream ends; \
                                      `error` (a problem) if the job vanishes or the store \
                                      fails", content_type = "text/event-stream", body = String),
    ),
)]
pub(super) async fn job_events(
    State(state): State<AppState>,
    tenant: Tenant,
    IdPath(id): IdPath,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let first = Job::from(&find(&state, &tenant, &id).await?);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        state,
        tenant,
        id,
        sent: None,
        read: Some(first),
        tick,
        ended: false,
    };
    let events = stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

impl Feed {
    /// The next event, waiting for the job to change; `None` once the feed has ended.
    async fn next_event(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            let job = match self.read.take() {
                Some(job) => job,
                None => {
                    tokio::select! {
                        _ = self.tick.tick() => {}
                        _ = self.state.shutdown.cancelled() => {
                            return Some(self.error(Problem {
                                retry_after: Some(1),
                                ..Problem::new(
                                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                    "Shutting Down",
                                    "the server is shutting down; reconnect to follow the job",
                                )
                            }));
                        }
                    }
                    match self.state.store.job(self.tenant.as_str(), &self.id).await {
                        Ok(Some(record)) => Job::from(&record),
                        Ok(None) => {
                            return Some(self.error(Problem::not_found(format!(
                                "job `{}` no longer exists",
                                self.id
                            ))))
                        }
                        Err(e) => return Some(self.error(Problem::from(e))),
                    }
                }
            };
            if job.is_finished() {
                self.ended = true;
                return Some(json_event("done", &job));
            }
            if self.sent.as_ref() != Some(&job) {
                let event = json_event("progress", &job);
                self.sent = Some(job);
                return Some(event);
            }
        }
    }

    /// The final `error` event.
    fn error(&mut self, problem: Problem) -> Event {
        self.ended = true;
        json_event("error", &problem.body())
    }
}

/// An event named `name` carrying `value` as JSON.
fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Event::default().event(name).data(data)
}
