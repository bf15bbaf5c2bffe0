//! One statement on a sink's database, outside any run: `ferry tune --reset` empties its
//! scratch tables with it.

use std::str::FromStr;

use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::error::Error;

/// Runs `sql` (one or more statements) on the database at `url` (`postgres://`,
/// `mysql://`/`mariadb://`, `sqlite:PATH` or a `.db` path), on a connection of its own.
pub async fn execute(url: &str, sql: &str) -> Result<(), Error> {
    let ctx = |what: &str| {
        let context = format!("{what} `{sql}`");
        move |source| Error::Sql { context, source }
    };
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
        let url = format!("mysql://{}", url.split_once("://").map_or(url, |(_, r)| r));
        let mut conn = MySqlConnection::connect(&url)
            .await
            .map_err(ctx("connecting to run"))?;
        conn.execute(sql).await.map_err(ctx("running"))?;
        let _ = conn.close().await;
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let mut conn = PgConnection::connect(url)
            .await
            .map_err(ctx("connecting to run"))?;
        conn.execute(sql).await.map_err(ctx("running"))?;
        let _ = conn.close().await;
    } else {
        let options = if lower.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(ctx("connecting to run"))?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let mut conn: SqliteConnection =
            options.connect().await.map_err(ctx("connecting to run"))?;
        conn.execute(sql).await.map_err(ctx("running"))?;
        let _ = conn.close().await;
    }
    Ok(())
}
