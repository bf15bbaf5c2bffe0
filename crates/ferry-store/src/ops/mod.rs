//! The store's operations, written once for every backend over the [`backend`](crate::backend)
//! traits, by concept:
//!
//! - `jobs`: submission (validation, idempotency, queue limits) and cancellation;
//! - `claims`: claims by the priority rule, and taking leases back (release, rescue);
//! - `completion`: results recorded exactly once, failed attempts (retry, dead letter);
//! - `dead_letters`: re-drive;
//! - `dispatch`: the one [`Store`](crate::Store) implementation, mapping each method to
//!   these operations or to a shared query.

mod claims;
mod completion;
mod dead_letters;
mod dispatch;
mod jobs;
