//! Finding the caller's job: every route that names a job reads it through [`find`], so
//! another tenant's job answers exactly like one that does not exist (404).

use ferry_store::{JobId, JobRecord};

use super::problem::Problem;
use super::state::AppState;
use super::tenant::Tenant;

/// The tenant's job, or 404.
pub(super) async fn find(
    state: &AppState,
    tenant: &Tenant,
    id: &JobId,
) -> Result<JobRecord, Problem> {
    state
        .store
        .job(tenant.as_str(), id)
        .await?
        .ok_or_else(|| no_job(id))
}

/// The 404 for a job that does not exist or is another tenant's.
pub(super) fn no_job(id: &JobId) -> Problem {
    Problem::not_found(format!("no job `{id}`"))
}
