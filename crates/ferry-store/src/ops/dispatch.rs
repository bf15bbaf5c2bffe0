//! The one [`Store`] implementation, for every backend: each method boxes an operation of
//! this module's siblings or a shared [`Queries`] statement.

use std::time::Duration;

use ferry_core::BoxFuture;
use serde_json::Value;

use super::{claims, completion, dead_letters, jobs};
use crate::backend::{JobStatements, LeaseStatements, Queries, WriteStatements};
use crate::common::{self, secs};
use crate::error::Error;
use crate::store::Store;
use crate::types::{
    uuid_v4, ApiKey, ClaimedItem, DeadLetter, FailOutcome, IssuedKey, JobId, JobRecord, NewJob,
    Page, QueueDepth, RawJson, ResultRow, Submitted,
};

impl<B: JobStatements + LeaseStatements + WriteStatements> Store for B {
    fn submit_job(&self, job: NewJob) -> BoxFuture<'_, Result<Submitted, Error>> {
        Box::pin(jobs::submit(self, job))
    }

    fn job<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, Error>> {
        Box::pin(self.read_job(tenant, id))
    }

    fn list_jobs<'a>(
        &'a self,
        tenant: &'a str,
        limit: usize,
        cursor: Option<i64>,
    ) -> BoxFuture<'a, Result<Page<JobRecord>, Error>> {
        Box::pin(B::DB::list_jobs(self.reader(), tenant, limit, cursor))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<ClaimedItem>, Error>> {
        Box::pin(claims::claim(self, worker, limit, lease))
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(self.extend_leases(worker, self.now() + secs(lease)))
    }

    fn complete<'a>(
        &'a self,
        worker: &'a str,
        results: Vec<(i64, Value)>,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(completion::complete(self, worker, results))
    }

    fn fail<'a>(
        &'a self,
        worker: &'a str,
        item_id: i64,
        error: &'a str,
        retry_after: Option<Duration>,
        dead: bool,
    ) -> BoxFuture<'a, Result<FailOutcome, Error>> {
        Box::pin(completion::fail(
            self,
            worker,
            item_id,
            error,
            retry_after,
            dead,
        ))
    }

    fn release<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(claims::take_back(self, Some(worker), true))
    }

    fn rescue_expired(&self) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let n = claims::take_back(self, None, false).await?;
            if n > 0 {
                tracing::info!(items = n, "rescued items with expired leases");
            }
            Ok(n)
        })
    }

    fn cancel_job<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Option<JobRecord>, Error>> {
        Box::pin(jobs::cancel(self, tenant, id))
    }

    fn expire_overdue(&self) -> BoxFuture<'_, Result<Vec<JobRecord>, Error>> {
        Box::pin(jobs::expire_overdue(self))
    }

    fn throughput(&self, window: Duration) -> BoxFuture<'_, Result<Option<f64>, Error>> {
        Box::pin(jobs::throughput(self, window))
    }

    fn results<'a>(
        &'a self,
        tenant: &'a str,
        job_id: &'a JobId,
        after_item_id: Option<i64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Page<ResultRow>>, Error>> {
        Box::pin(self.read_results(tenant, job_id, after_item_id, limit))
    }

    fn results_raw<'a>(
        &'a self,
        tenant: &'a str,
        job_id: &'a JobId,
        after_item_id: Option<i64>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Page<ResultRow<RawJson>>>, Error>> {
        Box::pin(self.read_results_raw(tenant, job_id, after_item_id, limit))
    }

    fn dead_letters<'a>(
        &'a self,
        tenant: &'a str,
        limit: usize,
        cursor: Option<i64>,
    ) -> BoxFuture<'a, Result<Page<DeadLetter>, Error>> {
        Box::pin(B::DB::dead_letters(self.reader(), tenant, limit, cursor))
    }

    fn redrive<'a>(
        &'a self,
        tenant: &'a str,
        item_ids: Vec<i64>,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(dead_letters::redrive(self, tenant, item_ids))
    }

    fn queue_depths(&self) -> BoxFuture<'_, Result<Vec<QueueDepth>, Error>> {
        Box::pin(self.read_queue_depths())
    }

    fn sweep_results(&self, older_than: Duration) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            const W: &str = "sweeping finished jobs";
            let mut tx = self.begin(W).await?;
            let n = B::DB::sweep(&mut tx, self.now() - secs(older_than)).await?;
            self.commit(tx, W).await?;
            if n > 0 {
                tracing::info!(jobs = n, "swept finished jobs past their result TTL");
            }
            Ok(n)
        })
    }

    fn wait_for_work(&self, timeout: Duration) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async move { Ok(self.wakeups().wait(timeout).await) })
    }

    fn create_key<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<IssuedKey, Error>> {
        Box::pin(async move {
            let plaintext = common::new_secret();
            let key = ApiKey {
                id: uuid_v4(),
                tenant: tenant.to_owned(),
                name: name.to_owned(),
                created_at: self.now(),
                revoked_at: None,
            };
            B::DB::insert_key(self.writer(), &key, &common::key_hash(&plaintext)).await?;
            Ok(IssuedKey { key, plaintext })
        })
    }

    fn list_keys<'a>(
        &'a self,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ApiKey>, Error>> {
        Box::pin(B::DB::list_keys(self.reader(), tenant))
    }

    fn revoke_key<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(B::DB::revoke_key(self.writer(), id, self.now()))
    }

    fn tenant_for_key<'a>(
        &'a self,
        plaintext: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        Box::pin(
            async move { B::DB::tenant_for_key(self.reader(), &common::key_hash(plaintext)).await },
        )
    }
}
