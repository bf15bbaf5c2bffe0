//! [`PgStore`]: connecting, the schema option, transactions, and the task relaying
//! `LISTEN` notifications to waiting workers.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::common::Wakeups;
use crate::error::{redact, sql, Error};
use crate::options::{pool_options, StoreOptions};
use crate::postgres::migrations;

/// A PostgreSQL transaction.
pub(super) type PgTx = Transaction<'static, Postgres>;

/// The shared store: PostgreSQL, for several workers on several machines.
///
/// Claims lock candidate items with `FOR UPDATE SKIP LOCKED`, so concurrent workers never
/// wait on each other nor get the same item; items are bulk-inserted with `COPY`; wake-ups
/// travel by `LISTEN/NOTIFY` on a dedicated connection. Rows are always locked items first,
/// then jobs in id order (cancel locks its job, then skips locked items), so operations do
/// not deadlock. Timestamps come from the calling process's clock (see [`Clock`](crate::Clock)).
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    schema: Option<String>,
    channel: String,
    options: StoreOptions,
    wake: Arc<Wakeups>,
    listener: JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects to `url` (the connection's default schema, usually `public`) with default
    /// options, applying any pending migration.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        PgStore::connect_with(url, None, StoreOptions::new()).await
    }

    /// Connects to `url` and keeps everything in `schema`, creating it if needed; the
    /// wake-up channel is then `ferry_work_<schema>`. For isolated tests and for several
    /// stores in one database.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self, Error> {
        PgStore::connect_with(url, Some(schema), StoreOptions::new()).await
    }

    /// Connects with every option. `schema` must be a plain lowercase identifier
    /// (`[a-z_][a-z0-9_]*`, at most 40 bytes).
    pub async fn connect_with(
        url: &str,
        schema: Option<&str>,
        options: StoreOptions,
    ) -> Result<Self, Error> {
        let ctx = |source| Error::Sql {
            context: format!("connecting to {}", redact(url)),
            source,
        };
        let mut connect = PgConnectOptions::from_str(url).map_err(ctx)?;
        if let Some(schema) = schema {
            check_schema(schema)?;
            connect = connect.options([("search_path", schema)]);
        }
        let pool = pool_options::<Postgres>()
            .max_connections(options.max_connections.get())
            .connect_with(connect.clone())
            .await
            .map_err(ctx)?;
        migrations::apply(&pool, schema).await?;
        let channel = match schema {
            Some(s) => format!("ferry_work_{s}"),
            None => "ferry_work".to_owned(),
        };
        // A pool of its own: the listener holds its connection for good.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .map_err(ctx)?;
        let mut listener = PgListener::connect_with(&listen_pool).await.map_err(ctx)?;
        listener.listen(&channel).await.map_err(ctx)?;
        let wake = Arc::new(Wakeups::default());
        let listener = tokio::spawn(forward(listener, Arc::clone(&wake)));
        Ok(PgStore {
            pool,
            schema: schema.map(str::to_owned),
            channel,
            options,
            wake,
            listener,
        })
    }

    /// The schema given to [`connect_with_schema`](Self::connect_with_schema), if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

impl Backend for PgStore {
    type DB = Postgres;
    type Tx = PgTx;

    fn options(&self) -> &StoreOptions {
        &self.options
    }

    fn wakeups(&self) -> &Wakeups {
        &self.wake
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self, what: &'static str) -> Result<PgTx, Error> {
        self.pool.begin().await.map_err(sql(what))
    }

    async fn commit(&self, tx: PgTx, what: &'static str) -> Result<(), Error> {
        tx.commit().await.map_err(sql(what))
    }

    /// Queues a wake-up for every listener; delivered when `tx` commits.
    async fn notify(&self, tx: &mut PgTx) -> Result<(), Error> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.channel)
            .execute(&mut **tx)
            .await
            .map_err(sql("notifying workers"))?;
        Ok(())
    }
}

/// Checks a schema name: it goes into `search_path` and a channel name unquoted.
fn check_schema(schema: &str) -> Result<(), Error> {
    let mut chars = schema.chars();
    let ok = schema.len() <= 40
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            option: "schema",
            message: format!("{schema:?} is not a lowercase identifier of at most 40 bytes"),
        })
    }
}

/// Relays notifications to the in-process waiters until the store is dropped.
async fn forward(mut listener: PgListener, wake: Arc<Wakeups>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => wake.wake(),
            // The connection dropped (and is re-established): a notification may have been
            // lost, so wake everyone to look.
            Ok(None) => wake.wake(),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying in 1 s");
                wake.wake();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema("ferry_test_01").is_ok());
        for bad in ["", "1abc", "Ab", "a-b", "a\"b", &"x".repeat(41)] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }
}
