//! The tenant a request acts for: put into the request by the API-key middleware, read by
//! every route and by the per-tenant rate limits. Its own
//! module so that the limits (held by the app state) and the middleware (which reads the
//! state) do not depend on each other.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::problem::Problem;

/// The tenant a request acts for (`""` on a service without API keys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tenant(pub String);

impl Tenant {
    /// The tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware always inserts one; a route outside it acts for the open tenant.
        Ok(parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .unwrap_or_default())
    }
}
