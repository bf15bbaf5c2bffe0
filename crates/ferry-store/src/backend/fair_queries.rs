//! [`FairQueries`]: the statements of fair claims and tenant quotas, shared by SQLite and
//! PostgreSQL: the lanes of the rotation, the turns a claim records, a tenant's items in
//! flight and its backlog.

use std::future::Future;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::error::{sql, Error};
use crate::fair::Lane;
use crate::types::{db_index, from_db_index};

/// What a claim attaches to its items from their job.
#[derive(Debug)]
pub(crate) struct ClaimedJob {
    pub(crate) tenant: String,
    pub(crate) handler: String,
    /// JSON text.
    pub(crate) params: String,
    /// The job's cap on items per handler call.
    pub(crate) max_batch_size: Option<i64>,
}

/// A tenant's unfinished work, for its queued-items quota.
#[derive(Debug, Default)]
pub(crate) struct TenantBacklog {
    /// Queued items of its unfinished jobs.
    pub(crate) queued: i64,
    /// Items of those jobs claimed at least once.
    pub(crate) claimed: i64,
    /// When the first of those jobs started (`None`: none has).
    pub(crate) since: Option<f64>,
}

/// Every job with queued items, with its claim numbers and its tenant's ([`FairQueries::lanes`]).
pub(crate) const LANES: &str = "SELECT j.id, j.tenant, j.priority, j.seq, j.served, j.queued, \
             COALESCE(t.served, 0) FROM jobs j LEFT JOIN tenant_turns t ON t.tenant = j.tenant \
             WHERE j.queued > 0";

/// A tenant's items in flight ([`FairQueries::in_flight`]).
pub(crate) const IN_FLIGHT: &str =
    "SELECT CAST(COALESCE(SUM(total - succeeded - failed - cancelled - queued), 0) \
             AS BIGINT) FROM jobs WHERE tenant = $1 AND status IN ('pending', 'processing')";

/// A tenant's queued and claimed items ([`FairQueries::tenant_backlog`]).
pub(crate) const TENANT_BACKLOG: &str = "SELECT CAST(COALESCE(SUM(queued), 0) AS BIGINT), \
             CAST(COALESCE(SUM(total - queued), 0) AS BIGINT), MIN(started_at) \
             FROM jobs WHERE tenant = $1 AND status IN ('pending', 'processing')";

/// A claim's turn recorded on a job ([`FairQueries::serve_job`]).
pub(crate) const SERVE_JOB: &str = "UPDATE jobs SET queued = queued - $2, served = $3, \
             started_at = COALESCE(started_at, $4), \
             status = CASE WHEN status = 'pending' THEN 'processing' ELSE status END \
             WHERE id = $1 RETURNING tenant, handler, CAST(params AS TEXT), max_batch_size";

/// A claim's turn recorded on a tenant ([`FairQueries::serve_tenant`]).
pub(crate) const SERVE_TENANT: &str = "INSERT INTO tenant_turns (tenant, served) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET served = excluded.served";

/// A connection of the driver `DB`.
type Conn<DB> = <DB as Database>::Connection;

/// The fairness statements, for every driver that can run them (SQLite and PostgreSQL);
/// each takes the connection of the caller's transaction.
pub(crate) trait FairQueries: Database {
    /// Every job with queued items, by priority ([`db_index`] order), with the claim
    /// numbers that last served it and its tenant: the lanes of the fair rotation.
    fn lanes(conn: &mut Conn<Self>) -> impl Future<Output = Result<[Vec<Lane>; 3], Error>> + Send;

    /// Items of the tenant's unfinished jobs in flight (claimed, not yet ended).
    fn in_flight(
        conn: &mut Conn<Self>,
        tenant: &str,
    ) -> impl Future<Output = Result<i64, Error>> + Send;

    /// The tenant's queued items and progress, for its quota.
    fn tenant_backlog(
        conn: &mut Conn<Self>,
        tenant: &str,
    ) -> impl Future<Output = Result<TenantBacklog, Error>> + Send;

    /// Records that claim `stamp` took `taken` items of `job` at `now` (its queued count
    /// drops, it is started); returns what its items need.
    fn serve_job(
        conn: &mut Conn<Self>,
        job: &str,
        taken: i64,
        stamp: i64,
        now: f64,
    ) -> impl Future<Output = Result<ClaimedJob, Error>> + Send;

    /// Records that claim `stamp` served `tenant`.
    fn serve_tenant(
        conn: &mut Conn<Self>,
        tenant: &str,
        stamp: i64,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl<DB> FairQueries for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Option<f64>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn lanes(conn: &mut Conn<DB>) -> Result<[Vec<Lane>; 3], Error> {
        const W: &str = "claiming items";
        let rows = sqlx::query(LANES).fetch_all(conn).await.map_err(sql(W))?;
        let mut lanes: [Vec<Lane>; 3] = Default::default();
        for row in &rows {
            let p: i64 = row.try_get(2).map_err(sql(W))?;
            let Some(p) = from_db_index(p) else {
                return Err(Error::Corrupt {
                    message: format!("a job has the priority {p}"),
                });
            };
            let queued: i64 = row.try_get(5).map_err(sql(W))?;
            lanes[db_index(p)].push(Lane {
                job: row.try_get(0).map_err(sql(W))?,
                tenant: row.try_get(1).map_err(sql(W))?,
                seq: row.try_get(3).map_err(sql(W))?,
                served: row.try_get(4).map_err(sql(W))?,
                tenant_served: row.try_get(6).map_err(sql(W))?,
                cap: queued.max(0) as u64,
                taken: 0,
            });
        }
        Ok(lanes)
    }

    async fn in_flight(conn: &mut Conn<DB>, tenant: &str) -> Result<i64, Error> {
        sqlx::query_scalar(IN_FLIGHT)
            .bind(tenant)
            .fetch_one(conn)
            .await
            .map_err(sql("claiming items"))
    }

    async fn tenant_backlog(conn: &mut Conn<DB>, tenant: &str) -> Result<TenantBacklog, Error> {
        const W: &str = "creating a job";
        let row = sqlx::query(TENANT_BACKLOG)
            .bind(tenant)
            .fetch_one(conn)
            .await
            .map_err(sql(W))?;
        Ok(TenantBacklog {
            queued: row.try_get(0).map_err(sql(W))?,
            claimed: row.try_get(1).map_err(sql(W))?,
            since: row.try_get(2).map_err(sql(W))?,
        })
    }

    async fn serve_job(
        conn: &mut Conn<DB>,
        job: &str,
        taken: i64,
        stamp: i64,
        now: f64,
    ) -> Result<ClaimedJob, Error> {
        const W: &str = "claiming items";
        let row = sqlx::query(SERVE_JOB)
            .bind(job)
            .bind(taken)
            .bind(stamp)
            .bind(now)
            .fetch_optional(conn)
            .await
            .map_err(sql(W))?;
        let Some(row) = row else {
            return Err(Error::Corrupt {
                message: format!("claimed items belong to a missing job {job}"),
            });
        };
        Ok(ClaimedJob {
            tenant: row.try_get(0).map_err(sql(W))?,
            handler: row.try_get(1).map_err(sql(W))?,
            params: row.try_get(2).map_err(sql(W))?,
            max_batch_size: row.try_get(3).map_err(sql(W))?,
        })
    }

    async fn serve_tenant(conn: &mut Conn<DB>, tenant: &str, stamp: i64) -> Result<(), Error> {
        sqlx::query(SERVE_TENANT)
            .bind(tenant)
            .bind(stamp)
            .execute(conn)
            .await
            .map_err(sql("claiming items"))?;
        Ok(())
    }
}
