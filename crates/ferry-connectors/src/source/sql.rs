//! SQL queries on SQLite or PostgreSQL: each row is one item, a JSON object keyed by column
//! name.
//!
//! Values are decoded by type:
//!
//! | SQLite | PostgreSQL | JSON |
//! |---|---|---|
//! | INTEGER (`BOOLEAN` columns: `true`/`false`) | `int2`, `int4`, `int8`, `oid` | number (boolean) |
//! | REAL | `float4`, `float8` | number (NaN and infinities: `null`) |
//! | | `numeric` | string, exact (`"12.50"`) |
//! | | `bool` | boolean |
//! | TEXT (dates too: SQLite stores them as text) | `text`, `varchar`, `char(n)`, `name` | string |
//! | | `json`, `jsonb` | the JSON value |
//! | | `date`, `time`, `timestamp`, `timestamptz` | string: `2024-05-01`, `13:45:00.5`, `2024-05-01T13:45:00`, `2024-05-01T11:45:00Z` (UTC) |
//! | | `uuid` | string |
//! | BLOB (UTF-8 text as a string) | | string |
//! | NULL | NULL | `null` |
//!
//! Anything else (PostgreSQL arrays, enums, intervals, `timetz`, non-UTF-8 blobs, ...) is
//! `null`, with one warning per column: select it with a cast (`col::text`) to keep it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Number, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, PgValueFormat};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Column, ConnectOptions, Connection, Executor, Row, TypeInfo, ValueRef};

use super::stream::{approx_object_size, channel, Sender};
use super::{ItemStream, KeyBy};
use crate::Error;

/// The context of every error the query itself causes.
const QUERY_CONTEXT: &str = "running the source query";

/// Runs `query` on the database at `url` and streams its rows as JSON objects keyed by
/// `key`.
///
/// `url` is `sqlite:PATH`, `sqlite://PATH` or a bare path ending in `.db`, `.sqlite` or
/// `.sqlite3` (opened read-only; a missing file is an error), or `postgres://...` /
/// `postgresql://...`.
///
/// Connects and prepares the query now: an unreachable database is an [`Error::Sql`] whose
/// context names the URL (without its password), and a query that does not prepare (a syntax
/// error, a missing table) is an [`Error::Sql`] with context `running the source query`,
/// returned here rather than from the stream. Rows are fetched by a task, a bounded number
/// ahead of the consumer; dropping the stream stops it.
pub async fn sql(url: &str, query: &str, key: KeyBy) -> Result<ItemStream, Error> {
    let shown = redact_url(url);
    let mut database = Database::connect(url, &shown).await?;
    if let Err(source) = database.prepare(query).await {
        database.close().await;
        return Err(query_error(source));
    }
    let (tx, stream) = channel(|| {
        query_error(sqlx::Error::Protocol(
            "the query task stopped before the end of the result set".into(),
        ))
    });
    let origin = format!("source query on {shown}");
    tokio::spawn(database.run(query.to_owned(), key, origin, tx));
    Ok(stream)
}

/// Counts the rows `query` returns (`SELECT COUNT(*) FROM (query)`), for progress and ETA.
/// Costs one extra pass at the database; errors as [`sql`].
pub async fn sql_count(url: &str, query: &str) -> Result<u64, Error> {
    let shown = redact_url(url);
    let mut database = Database::connect(url, &shown).await?;
    let trimmed = query.trim().trim_end_matches(';');
    let counting = format!("SELECT COUNT(*) FROM ({trimmed}) AS ferry_count");
    let n = match &mut database {
        Database::Sqlite(conn) => sqlx::query(&counting)
            .fetch_one(&mut *conn)
            .await
            .and_then(|r| r.try_get::<i64, _>(0)),
        Database::Postgres(conn) => sqlx::query(&counting)
            .fetch_one(&mut *conn)
            .await
            .and_then(|r| r.try_get::<i64, _>(0)),
    };
    database.close().await;
    n.map(|n| n.max(0) as u64).map_err(query_error)
}

fn query_error(source: sqlx::Error) -> Error {
    Error::Sql {
        context: QUERY_CONTEXT.to_owned(),
        source,
    }
}

/// A source runs one query, so it holds one connection rather than a pool: a pool would
/// also retry a refused connection until its acquire timeout and then report only that it
/// timed out, where the connection's own error says why.
enum Database {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// How long connecting may take (a host that drops packets would otherwise take the
/// operating system's TCP timeout, minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Database {
    async fn connect(url: &str, shown: &str) -> Result<Self, Error> {
        let connect_error = |source| Error::Sql {
            context: format!("connecting to {shown}"),
            source,
        };
        let lower = url.to_ascii_lowercase();
        let connecting = async {
            if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
                let options = PgConnectOptions::from_str(url)?;
                return Ok(Database::Postgres(options.connect().await?));
            }
            let options = if lower.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url)?
            } else if [".db", ".sqlite", ".sqlite3"]
                .iter()
                .any(|ext| lower.ends_with(ext))
            {
                SqliteConnectOptions::new().filename(Path::new(url))
            } else {
                return Err(sqlx::Error::Configuration(
                    "unsupported database URL: expected `sqlite:PATH`, `postgres://...` or a \
                     `.db`, `.sqlite` or `.sqlite3` file"
                        .into(),
                ));
            };
            let options = options.read_only(true).create_if_missing(false);
            Ok(Database::Sqlite(options.connect().await?))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(connected) => connected.map_err(connect_error),
            Err(_) => Err(connect_error(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
            )))),
        }
    }

    async fn prepare(&mut self, query: &str) -> Result<(), sqlx::Error> {
        match self {
            Database::Sqlite(conn) => conn.prepare(query).await.map(drop),
            Database::Postgres(conn) => conn.prepare(query).await.map(drop),
        }
    }

    async fn close(self) {
        // Closing is a courtesy to the server; a failure changes nothing for the source.
        let _ = match self {
            Database::Sqlite(conn) => conn.close().await,
            Database::Postgres(conn) => conn.close().await,
        };
    }

    /// The fetching task: rows into the channel until the end, an error, or the consumer
    /// leaving.
    async fn run(mut self, query: String, key: KeyBy, origin: String, tx: Sender) {
        let pump = Pump {
            key: &key,
            origin: &origin,
            tx: &tx,
        };
        let finished = match &mut self {
            Database::Sqlite(conn) => {
                let rows = sqlx::query(&query).fetch(conn);
                pump.run(rows, sqlite_row).await
            }
            Database::Postgres(conn) => {
                let rows = sqlx::query(&query).fetch(conn);
                pump.run(rows, pg_row).await
            }
        };
        self.close().await;
        if finished {
            tx.finish().await;
        }
    }
}

struct Pump<'a> {
    key: &'a KeyBy,
    origin: &'a str,
    tx: &'a Sender,
}

impl Pump<'_> {
    /// Sends the rows; `true` if the result set (or an error) was the end, `false` if the
    /// consumer left.
    async fn run<R, S>(
        &self,
        mut rows: S,
        convert: fn(&R, &mut Warned) -> Map<String, Value>,
    ) -> bool
    where
        S: futures_core::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    {
        let mut warned = Warned::default();
        let mut index = 0u64;
        loop {
            let next = tokio::select! {
                biased;
                () = self.tx.closed() => return false,
                next = rows.next() => next,
            };
            let item = match next {
                None => return true,
                Some(Ok(row)) => {
                    let payload = convert(&row, &mut warned);
                    let bytes = approx_object_size(&payload);
                    self.key.item(self.origin, index, payload, bytes)
                }
                Some(Err(source)) => {
                    self.tx.send(Err(query_error(source))).await;
                    return true;
                }
            };
            index += 1;
            if !self.tx.send(item).await {
                return false;
            }
        }
    }
}

/// Columns already warned about, so an undecodable column warns once, not once per row.
#[derive(Default)]
struct Warned(Vec<String>);

impl Warned {
    fn unsupported(&mut self, column: &str, type_name: &str) -> Value {
        if !self.0.iter().any(|c| c == column) {
            tracing::warn!(
                column,
                r#type = type_name,
                "source query: column type not supported, values are null; select it with a cast to text"
            );
            self.0.push(column.to_owned());
        }
        Value::Null
    }
}

fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn sqlite_row(row: &SqliteRow, warned: &mut Warned) -> Map<String, Value> {
    row.columns()
        .iter()
        .map(|column| {
            let name = column.name();
            (
                name.to_owned(),
                sqlite_value(row, column.ordinal(), name, warned),
            )
        })
        .collect()
}

fn sqlite_value(row: &SqliteRow, i: usize, name: &str, warned: &mut Warned) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    // The value's own storage class: SQLite columns are dynamically typed.
    let storage = raw.type_info().name().to_owned();
    let declared = row.column(i).type_info().name().to_owned();
    let value = match storage.as_str() {
        "INTEGER" | "BOOLEAN" if declared == "BOOLEAN" => row
            .try_get_unchecked::<i64, _>(i)
            .ok()
            .map(|v| Value::Bool(v != 0)),
        "INTEGER" | "BOOLEAN" => row.try_get_unchecked::<i64, _>(i).ok().map(Value::from),
        "REAL" => row.try_get_unchecked::<f64, _>(i).ok().map(float),
        "BLOB" => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(Value::String),
        _ => row
            .try_get_unchecked::<String, _>(i)
            .ok()
            .map(Value::String),
    };
    value.unwrap_or_else(|| warned.unsupported(name, &storage))
}

fn pg_row(row: &PgRow, warned: &mut Warned) -> Map<String, Value> {
    row.columns()
        .iter()
        .map(|column| {
            let name = column.name();
            (
                name.to_owned(),
                pg_value(row, column.ordinal(), name, warned),
            )
        })
        .collect()
}

fn pg_value(row: &PgRow, i: usize, name: &str, warned: &mut Warned) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let type_name = raw.type_info().name().to_owned();
    let value = match type_name.as_str() {
        "INT2" => row.try_get::<i16, _>(i).ok().map(Value::from),
        "INT4" => row.try_get::<i32, _>(i).ok().map(Value::from),
        "INT8" => row.try_get::<i64, _>(i).ok().map(Value::from),
        "FLOAT4" => row.try_get::<f32, _>(i).ok().map(|v| float(f64::from(v))),
        "FLOAT8" => row.try_get::<f64, _>(i).ok().map(float),
        "BOOL" => row.try_get::<bool, _>(i).ok().map(Value::Bool),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => {
            row.try_get::<String, _>(i).ok().map(Value::String)
        }
        "JSON" | "JSONB" => row
            .try_get::<sqlx::types::Json<Value>, _>(i)
            .ok()
            .map(|json| json.0),
        _ if raw.format() == PgValueFormat::Text => raw.as_str().ok().map(Value::from),
        other => raw
            .as_bytes()
            .ok()
            .and_then(|bytes| pg_binary(other, bytes))
            .map(Value::String),
    };
    value.unwrap_or_else(|| warned.unsupported(name, &type_name))
}

/// Decodes the binary wire format of the types sqlx decodes only with optional features.
fn pg_binary(type_name: &str, bytes: &[u8]) -> Option<String> {
    match type_name {
        "NUMERIC" => pg_numeric(bytes),
        "DATE" => Some(pg_date(i32::from_be_bytes(bytes.try_into().ok()?))),
        "TIME" => Some(time_of_day(i64::from_be_bytes(bytes.try_into().ok()?))),
        "TIMESTAMP" => Some(pg_timestamp(i64::from_be_bytes(bytes.try_into().ok()?), "")),
        "TIMESTAMPTZ" => Some(pg_timestamp(
            i64::from_be_bytes(bytes.try_into().ok()?),
            "Z",
        )),
        "OID" => Some(u32::from_be_bytes(bytes.try_into().ok()?).to_string()),
        "UUID" => {
            let bytes: [u8; 16] = bytes.try_into().ok()?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        _ => None,
    }
}

/// `numeric`: sign, weight (of the first base-10000 digit), display scale, digits.
fn pg_numeric(bytes: &[u8]) -> Option<String> {
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<Vec<u16>>>()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    // The digit of 10000^power.
    let digit = |power: i64| -> u16 {
        usize::try_from(weight - power)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(weight).to_string());
        for power in (0..weight).rev() {
            out.push_str(&format!("{:04}", digit(power)));
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut power = -1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(power)));
            power -= 1;
        }
        fraction.truncate(dscale);
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn pg_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        days => civil_date(i64::from(days) + PG_EPOCH_DAYS),
    }
}

fn pg_timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        micros => {
            let days = micros.div_euclid(MICROS_PER_DAY);
            let time = micros.rem_euclid(MICROS_PER_DAY);
            format!(
                "{}T{}{zone}",
                civil_date(days + PG_EPOCH_DAYS),
                time_of_day(time)
            )
        }
    }
}

/// `HH:MM:SS` with the fraction of a second when there is one (trailing zeros trimmed).
fn time_of_day(micros: i64) -> String {
    let seconds = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// `YYYY-MM-DD` for days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The URL without its password (in the user info or a `password` parameter), for messages.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            format!("{user}@{}", &authority[at + 1..])
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, params)) => {
            let kept: Vec<&str> = params
                .split('&')
                .filter(|param| {
                    let name = param.split('=').next().unwrap_or_default();
                    !name.eq_ignore_ascii_case("password")
                        && !name.eq_ignore_ascii_case("sslpassword")
                })
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/prod?sslmode=require&password=x"),
            "postgres://app@db:5432/prod?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/prod"), "postgres://db/prod");
        assert_eq!(redact_url("postgresql://a:b@h"), "postgresql://a@h");
        assert_eq!(redact_url("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
    }

    #[test]
    fn dates_and_times_render_like_iso_8601() {
        assert_eq!(pg_date(0), "2000-01-01");
        assert_eq!(pg_date(-1), "1999-12-31");
        assert_eq!(pg_date(8887), "2024-05-01");
        assert_eq!(pg_date(i32::MAX), "infinity");
        assert_eq!(time_of_day(49_500_500_000), "13:45:00.5");
        assert_eq!(
            pg_timestamp(8887 * MICROS_PER_DAY + 49_500_000_000, "Z"),
            "2024-05-01T13:45:00Z"
        );
        assert_eq!(pg_timestamp(-1, ""), "1999-12-31T23:59:59.999999");
    }

    #[test]
    fn numerics_keep_their_scale() {
        fn encode(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
            let mut out = Vec::new();
            for word in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
                out.extend_from_slice(&word.to_be_bytes());
            }
            out
        }
        let n = |bytes: Vec<u8>| pg_numeric(&bytes).unwrap_or_default();
        assert_eq!(n(encode(3, 1, 0, 3, &[1, 2345, 6780])), "12345.678");
        assert_eq!(n(encode(1, -1, 0x4000, 4, &[1])), "-0.0001");
        assert_eq!(n(encode(0, 0, 0, 2, &[])), "0.00");
        assert_eq!(n(encode(1, 2, 0, 0, &[7])), "700000000");
        assert_eq!(n(encode(0, 0, 0xC000, 0, &[])), "NaN");
    }
}
