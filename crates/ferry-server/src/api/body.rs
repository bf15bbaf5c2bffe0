//! [`JsonBody`]: a JSON request body whose every rejection is a precise problem+json.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::problem::Problem;
use super::state::AppState;

/// Like [`axum::Json`], but malformed JSON is 400, well-formed JSON of the wrong shape 422
/// (naming the field, line and column), a missing JSON content type 415 and a body over
/// [`AppState::max_body_bytes`] 413 with the limit in the detail.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(rejection(e, state.max_body_bytes)),
        }
    }
}

/// The problem for a rejected JSON body.
pub(super) fn rejection(e: JsonRejection, limit: usize) -> Problem {
    match e {
        JsonRejection::JsonDataError(e) => Problem::invalid(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large",
                format!("the request body is larger than the limit of {limit} bytes"),
            )
        }
        JsonRejection::BytesRejection(e) => Problem::new(e.status(), "Bad Request", e.body_text()),
        other => Problem::bad_request(other.body_text()),
    }
}
