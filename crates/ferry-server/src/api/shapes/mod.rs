//! The JSON the API reads and answers, as typed structs: each is serialized (or parsed) by
//! the handlers and described by `/openapi.json` from the same definition, so the document
//! cannot drift from what is sent.
//!
//! - [`job`]: the `/v1` answers (jobs, items, queues, dead letters) and their enums;
//! - [`request`]: what the `/v1` routes read (a job, a redrive, paging);
//! - [`batch`]: the KubeSentiment-compatible batch API (`/api/v1/batch/...`).

pub(crate) mod batch;
pub(crate) mod job;
pub(crate) mod request;
