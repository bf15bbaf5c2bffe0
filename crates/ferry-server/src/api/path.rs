//! [`IdPath`]: a path's `{id}` segment as a job id, with a problem+json rejection.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use ferry_store::JobId;

use super::problem::Problem;

/// The one `{id}` parameter of a route, a job id; a segment that is not valid UTF-8 after
/// percent-decoding is 400 problem+json instead of axum's plain-text rejection.
#[derive(Debug, Clone)]
pub(super) struct IdPath(pub(super) JobId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdPath(JobId::from(id)))
            .map_err(|e| Problem::bad_request(e.body_text()))
    }
}
