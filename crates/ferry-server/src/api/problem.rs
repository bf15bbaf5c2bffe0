//! Errors as `application/problem+json` (RFC 9457). Internal causes are logged, never sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An API error: a status, a short title and a precise detail for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Short, human-readable summary of the problem type.
    pub title: &'static str,
    /// What exactly was wrong with this request.
    pub detail: String,
    /// Seconds to wait before retrying (429, 503), sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

/// An error (RFC 9457), sent as `application/problem+json`: the body of every [`Problem`]
/// and of the `error` event that ends an event stream.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: &'static str,
    /// Short summary of the problem type.
    #[schema(example = "Not Found")]
    title: &'static str,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599, example = 404)]
    status: u16,
    /// What exactly was wrong with this request.
    detail: String,
}

impl Problem {
    /// A problem with `status`, `title` and `detail`.
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            title,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found", detail)
    }

    /// 422 Unprocessable Content (well-formed JSON with invalid values).
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid Request", detail)
    }

    /// Logs `cause` (never sent to the client) and returns the problem.
    pub fn log(self, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, status = self.status.as_u16(), "{}", self.title);
        self
    }

    /// What the client is sent.
    pub(crate) fn body(&self) -> ProblemBody {
        ProblemBody {
            kind: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        }
    }

    /// 500, logging the cause and telling the client nothing internal.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "the server failed; see its log",
        )
    }
}

impl From<ferry_store::Error> for Problem {
    fn from(e: ferry_store::Error) -> Self {
        match e {
            ferry_store::Error::QueueFull {
                priority,
                limit,
                retry_after_secs,
            } => Problem {
                retry_after: Some(retry_after_secs),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Queue Full",
                    format!(
                        "the {priority} priority queue holds its limit of {limit} unfinished jobs"
                    ),
                )
            },
            ferry_store::Error::TenantQuota {
                limit,
                queued,
                more,
                retry_after_secs,
                ..
            } => Problem {
                retry_after: Some(retry_after_secs),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Quota Exceeded",
                    format!(
                        "this tenant has {queued} queued items and may have {limit}; the \
                         job's {more} would pass that quota; retry in {retry_after_secs} s"
                    ),
                )
            },
            ferry_store::Error::InvalidJob { message } => Problem::invalid(message),
            // The database is away for a moment (restarting, a dropped connection, a
            // deadlock): nothing was stored, and the same request will do in a second.
            other if other.is_transient() => Problem {
                retry_after: Some(1),
                ..Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "the job store is unreachable for the moment; nothing was stored; retry",
                )
                .log(&other)
            },
            other => Problem::internal(&other),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let json = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_away_for_a_moment_is_503_with_retry_after() {
        let away = ferry_store::Error::Sql {
            context: "creating a job".to_owned(),
            source: sqlx::Error::PoolTimedOut,
        };
        let p = Problem::from(away);
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(p.retry_after, Some(1));
        let response = p.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        // Anything else the store fails with stays a 500 that says nothing internal.
        let bug = ferry_store::Error::Sql {
            context: "creating a job".to_owned(),
            source: sqlx::Error::RowNotFound,
        };
        let p = Problem::from(bug);
        assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(p.retry_after, None);
        assert!(!p.detail.contains("creating"));
    }
}
