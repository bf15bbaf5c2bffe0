//! The group-by source: a SQL query whose rows, in the query's `ORDER BY`, are cut into
//! groups of consecutive rows with the same value of one column (all rows of one ticker, or
//! all tickers' rows of one date). Rows are streamed from one connection and each group is
//! handed on as soon as the next one starts, through a bounded channel: only the groups in
//! flight are in memory, never the table.
//!
//! Rows are decoded into typed [`Cell`]s (no JSON in between). A group whose key shows up
//! again after another group means the query is not ordered by that column: that stops the
//! phase with a message saying so.
//!
//! With a [`Fold`] (a phase with `source.series`), rows are not cut into groups: each is
//! folded into its group's result as it streams (the query ordered by series, e.g. ticker,
//! not by the group column), and every group is handed on, folded, at the end of the rows.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use serde::ser::SerializeMap;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Column, ConnectOptions, Executor, Row, Statement, TypeInfo, ValueRef};
use tokio::sync::mpsc;

use crate::error::Error;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
}

impl Cell {
    /// The value as a number (`None` for NULL or text that is not one).
    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Cell::Real(x) => Some(*x),
            Cell::Int(i) => Some(*i as f64),
            Cell::Text(s) => s.trim().parse().ok(),
            Cell::Null => None,
        }
    }

    /// The value as text (NULL is empty).
    pub(crate) fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Real(x) => x.to_string(),
            Cell::Text(s) => s.clone(),
        }
    }
}

/// One group: its key and its rows, in the query's order.
#[derive(Debug)]
pub(crate) struct Group {
    /// The value of the group-by column.
    pub(crate) key: String,
    /// The query's columns.
    pub(crate) columns: Arc<Vec<String>>,
    /// The rows.
    pub(crate) rows: Vec<Vec<Cell>>,
}

impl Group {
    /// The column `name`'s index.
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// A dead letter names the group and its size, not its (possibly thousands of) rows.
impl serde::Serialize for Group {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("group", &self.key)?;
        m.serialize_entry("rows", &self.rows.len())?;
        m.end()
    }
}

/// One item of a phase: a group of rows for the stage, or a group the stage folded while
/// the rows streamed.
#[derive(Debug)]
pub(crate) enum Unit {
    /// Consecutive rows with the same `group_by` value.
    Rows(Group),
    /// A group folded from rows spread over the stream: the stage's output row, or why the
    /// group is dead-lettered.
    Folded {
        /// The value of the group-by column.
        key: String,
        /// The output row, or the reason it has none.
        row: Result<Vec<Cell>, String>,
    },
}

impl Unit {
    /// The group's key.
    pub(crate) fn key(&self) -> &str {
        match self {
            Unit::Rows(g) => &g.key,
            Unit::Folded { key, .. } => key,
        }
    }

    /// The memory it holds, in bytes, roughly (the engine's memory limits count these; an
    /// underestimate lets a fast source fill memory with groups waiting for the sink).
    pub(crate) fn bytes(&self) -> usize {
        let row = |r: &Vec<Cell>| {
            std::mem::size_of::<Vec<Cell>>()
                + r.len() * std::mem::size_of::<Cell>()
                + r.iter()
                    .map(|c| match c {
                        Cell::Text(s) => s.len(),
                        _ => 0,
                    })
                    .sum::<usize>()
        };
        match self {
            // Rows of a group are alike: the first one's size stands for all.
            Unit::Rows(g) => g.rows.first().map_or(0, row) * g.rows.len(),
            Unit::Folded { row: Ok(r), .. } => row(r),
            Unit::Folded { .. } => 64,
        }
    }
}

/// A dead letter names the group (and its size), not its rows.
impl serde::Serialize for Unit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Unit::Rows(g) => g.serialize(s),
            Unit::Folded { key, .. } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("group", key)?;
                m.end()
            }
        }
    }
}

/// A stage that folds rows into their groups as they stream, instead of receiving each
/// group's rows together.
pub(crate) trait Fold: Send + Sync + 'static {
    /// Folds one row (the query's columns). `Err` stops the phase (the rows are not in the
    /// order the fold needs).
    fn push(&mut self, row: Vec<Cell>) -> Result<(), String>;
    /// The folded groups, in key order.
    fn finish(self: Box<Self>) -> Vec<Unit>;
}

/// Makes a phase's fold from the query's columns (`Err`: a column it needs is missing).
pub(crate) type MakeFold<'a> = &'a dyn Fn(&[String]) -> Result<Box<dyn Fold>, String>;

/// The opened source: its columns (known before the first row) and the groups.
pub(crate) struct GroupSource {
    /// The query's columns.
    pub(crate) columns: Arc<Vec<String>>,
    /// The groups, then the end (or an error, then the end).
    pub(crate) groups: mpsc::Receiver<Result<Arc<Unit>, Error>>,
    /// Rows read so far.
    pub(crate) rows: RowsRead,
}

/// How many rows a phase's source has read so far: the progress of a folded phase, whose
/// groups all come out at the end of the rows.
#[derive(Debug, Clone, Default)]
pub struct RowsRead(Arc<AtomicU64>);

impl RowsRead {
    /// The rows read so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

fn is_postgres(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The source connection's page cache: 256 MiB (negative: KiB), which also bounds the
/// memory an `ORDER BY` sorts in before it spills.
const SOURCE_CACHE_SIZE: i64 = -262_144;
/// Memory-mapped reads of up to 4 GiB of the database file.
const SOURCE_MMAP_SIZE: i64 = 4_294_967_296;
/// How many rows the SQLite reader goes between looks at whether the phase still wants rows.
const CHECK_EVERY: u32 = 4096;

/// The SQLite file a `sqlite:PATH` URL (or a bare `.db` path) names.
fn sqlite_file(url: &str) -> Result<std::path::PathBuf, sqlx::Error> {
    if url.to_ascii_lowercase().starts_with("sqlite:") {
        Ok(SqliteConnectOptions::from_str(url)?
            .get_filename()
            .to_owned())
    } else {
        Ok(url.into())
    }
}

/// Opens a read-only SQLite connection tuned for one long ordered query: a 256 MiB page
/// cache and `mmap` reads.
fn open_sqlite(path: &std::path::Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    c.pragma_update(None, "cache_size", SOURCE_CACHE_SIZE)?;
    c.pragma_update(None, "mmap_size", SOURCE_MMAP_SIZE)?;
    Ok(c)
}

/// What the rows become: groups of consecutive equal keys, or a stage's fold.
enum Shape {
    Groups(Grouper),
    Fold(Box<dyn Fold>),
}

impl Shape {
    /// Takes one row; a finished group comes back. `Err` stops the phase.
    fn push(&mut self, cells: Vec<Cell>) -> Result<Option<Unit>, String> {
        match self {
            Shape::Groups(g) => Ok(g.push(cells)?.map(Unit::Rows)),
            Shape::Fold(f) => f.push(cells).map(|()| None),
        }
    }

    /// What is left at the end of the rows.
    fn finish(self) -> Vec<Unit> {
        match self {
            Shape::Groups(g) => g.current.map(Unit::Rows).into_iter().collect(),
            Shape::Fold(f) => f.finish(),
        }
    }
}

/// Cuts rows into groups of consecutive rows with the same key.
struct Grouper {
    columns: Arc<Vec<String>>,
    key_index: usize,
    group_by: String,
    seen: HashSet<String>,
    current: Option<Group>,
}

impl Grouper {
    /// Adds a row; the group it ends comes back.
    fn push(&mut self, cells: Vec<Cell>) -> Result<Option<Group>, String> {
        let key = cells[self.key_index].text();
        if let Some(g) = &mut self.current {
            if g.key == key {
                g.rows.push(cells);
                return Ok(None);
            }
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!(
                "rows of {} `{key}` are not together: the query must ORDER BY {} first",
                self.group_by, self.group_by
            ));
        }
        let next = Group {
            key,
            columns: self.columns.clone(),
            rows: vec![cells],
        };
        Ok(self.current.replace(next))
    }
}

/// Runs `query` on `url` and groups its rows by `group_by`, or, with `fold` (made from the
/// query's columns), folds every row into its group and hands the groups on at the end.
/// Connecting, a query that does not prepare (a missing table, a typo), a missing `group_by`
/// column and a fold that cannot read the columns are errors here, before any row is read.
///
/// SQLite is read with rusqlite on a thread of its own (values decoded straight from the
/// statement, groups handed over whole); PostgreSQL with sqlx.
pub(crate) async fn open(
    url: &str,
    query: &str,
    group_by: &str,
    phase: &str,
    fold: Option<MakeFold<'_>>,
) -> Result<GroupSource, Error> {
    let ctx = |what: &str| {
        let context = format!("phase `{phase}`: {what}");
        move |source| Error::Sql {
            context: context.clone(),
            source,
        }
    };
    let sqlite_ctx = |what: &str| {
        let context = format!("phase `{phase}`: {what}");
        move |source| Error::Sqlite {
            context: context.clone(),
            source,
        }
    };
    enum Conn {
        Sqlite(rusqlite::Connection),
        Postgres(sqlx::PgConnection),
    }
    let mut conn = if is_postgres(url) {
        let c = PgConnectOptions::from_str(url)
            .map_err(ctx("connecting to the source database"))?
            .disable_statement_logging()
            .connect()
            .await
            .map_err(ctx("connecting to the source database"))?;
        Conn::Postgres(c)
    } else {
        let path = sqlite_file(url).map_err(ctx("connecting to the source database"))?;
        let c = tokio::task::spawn_blocking(move || open_sqlite(&path))
            .await
            .map_err(|e| Error::Engine(ferry_core::Error::Task(e.to_string())))?
            .map_err(sqlite_ctx("connecting to the source database"))?;
        Conn::Sqlite(c)
    };
    let columns: Vec<String> = match &mut conn {
        Conn::Sqlite(c) => c
            .prepare(query)
            .map(|s| s.column_names().iter().map(|c| (*c).to_owned()).collect())
            .map_err(sqlite_ctx("source query"))?,
        Conn::Postgres(c) => c
            .prepare(query)
            .await
            .map(|s| s.columns().iter().map(|c| c.name().to_owned()).collect())
            .map_err(ctx("source query"))?,
    };
    let config_error = |message: String| Error::Config {
        file: Default::default(),
        line: 0,
        key: format!("phase `{phase}` source.query"),
        message,
    };
    let Some(key_index) = columns.iter().position(|c| c == group_by) else {
        return Err(Error::Config {
            file: Default::default(),
            line: 0,
            key: format!("phase `{phase}` source.group_by"),
            message: format!(
                "the query has no column `{group_by}`; its columns: {}",
                columns.join(", ")
            ),
        });
    };
    let fold = fold
        .map(|make| make(&columns))
        .transpose()
        .map_err(config_error)?;
    let columns = Arc::new(columns);
    let shape = match fold {
        Some(f) => Shape::Fold(f),
        None => Shape::Groups(Grouper {
            columns: columns.clone(),
            key_index,
            group_by: group_by.to_owned(),
            seen: HashSet::new(),
            current: None,
        }),
    };
    let (tx, rx) = mpsc::channel(16);
    let rows = RowsRead::default();
    let pump = Pump {
        phase: phase.to_owned(),
        shape,
        tx,
        rows: rows.clone(),
    };
    let query = query.to_owned();
    match conn {
        Conn::Sqlite(c) => {
            tokio::task::spawn_blocking(move || pump.run_sqlite(&c, &query));
        }
        Conn::Postgres(mut c) => {
            tokio::spawn(async move {
                let rows = sqlx::query(&query).fetch(&mut c);
                pump.run(rows, pg_row).await;
            });
        }
    }
    Ok(GroupSource {
        columns,
        groups: rx,
        rows,
    })
}

struct Pump {
    phase: String,
    shape: Shape,
    tx: mpsc::Sender<Result<Arc<Unit>, Error>>,
    rows: RowsRead,
}

impl Pump {
    fn out_of_order(&self, message: String) -> Error {
        Error::Order {
            origin: format!("phase `{}` source", self.phase),
            message,
        }
    }

    /// Reads a SQLite query to its end on this (blocking) thread.
    fn run_sqlite(mut self, conn: &rusqlite::Connection, query: &str) {
        let read_error = |phase: &str, source| Error::Sqlite {
            context: format!("phase `{phase}`: reading the source"),
            source,
        };
        let result = (|| -> Result<(), Option<Error>> {
            let mut stmt = conn
                .prepare(query)
                .map_err(|e| Some(read_error(&self.phase, e)))?;
            let width = stmt.column_count();
            let mut rows = stmt
                .query([])
                .map_err(|e| Some(read_error(&self.phase, e)))?;
            let mut since_check = 0u32;
            while let Some(row) = rows.next().map_err(|e| Some(read_error(&self.phase, e)))? {
                let cells = (0..width).map(|i| sqlite_cell(row.get_ref(i))).collect();
                match self.shape.push(cells) {
                    Ok(Some(unit)) => {
                        self.tx
                            .blocking_send(Ok(Arc::new(unit)))
                            .map_err(|_| None)?;
                    }
                    Ok(None) => {}
                    Err(message) => return Err(Some(self.out_of_order(message))),
                }
                since_check += 1;
                if since_check == CHECK_EVERY {
                    self.rows.add(u64::from(since_check));
                    since_check = 0;
                    if self.tx.is_closed() {
                        return Err(None);
                    }
                }
            }
            self.rows.add(u64::from(since_check));
            Ok(())
        })();
        match result {
            Ok(()) => {
                for unit in self.shape.finish() {
                    if self.tx.blocking_send(Ok(Arc::new(unit))).is_err() {
                        return;
                    }
                }
            }
            Err(Some(e)) => {
                let _ = self.tx.blocking_send(Err(e));
            }
            Err(None) => {}
        }
    }

    /// Reads a sqlx row stream (PostgreSQL) to its end.
    async fn run<R, S>(mut self, mut rows: S, decode: fn(&R) -> Vec<Cell>)
    where
        S: futures_core::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    {
        loop {
            let row = tokio::select! {
                biased;
                () = self.tx.closed() => return,
                row = rows.next() => row,
            };
            let cells = match row {
                None => break,
                Some(Ok(row)) => {
                    self.rows.add(1);
                    decode(&row)
                }
                Some(Err(source)) => {
                    let _ = self
                        .tx
                        .send(Err(Error::Sql {
                            context: format!("phase `{}`: reading the source", self.phase),
                            source,
                        }))
                        .await;
                    return;
                }
            };
            match self.shape.push(cells) {
                Ok(Some(unit)) => {
                    if self.tx.send(Ok(Arc::new(unit))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(message) => {
                    let e = self.out_of_order(message);
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
        for unit in self.shape.finish() {
            if self.tx.send(Ok(Arc::new(unit))).await.is_err() {
                return;
            }
        }
    }
}

/// A SQLite value as a cell, by its own storage class (SQLite columns are dynamically
/// typed; a blob is read as text).
fn sqlite_cell(value: Result<rusqlite::types::ValueRef<'_>, rusqlite::Error>) -> Cell {
    use rusqlite::types::ValueRef;
    match value {
        Ok(ValueRef::Integer(i)) => Cell::Int(i),
        Ok(ValueRef::Real(x)) => Cell::Real(x),
        Ok(ValueRef::Text(t) | ValueRef::Blob(t)) => {
            Cell::Text(String::from_utf8_lossy(t).into_owned())
        }
        Ok(ValueRef::Null) | Err(_) => Cell::Null,
    }
}

/// A SQLite row as cells, each by its value's own storage class.
pub(crate) fn sqlite_row(row: &SqliteRow) -> Vec<Cell> {
    (0..row.columns().len())
        .map(|i| {
            let Ok(raw) = row.try_get_raw(i) else {
                return Cell::Null;
            };
            if raw.is_null() {
                return Cell::Null;
            }
            // The value's own storage class: SQLite columns are dynamically typed.
            let storage = raw.type_info().name().to_owned();
            match storage.as_str() {
                "INTEGER" | "BOOLEAN" => row.try_get_unchecked::<i64, _>(i).map(Cell::Int),
                "REAL" => row.try_get_unchecked::<f64, _>(i).map(Cell::Real),
                _ => row.try_get_unchecked::<String, _>(i).map(Cell::Text),
            }
            .unwrap_or(Cell::Null)
        })
        .collect()
}

/// A PostgreSQL row as cells (dates and numerics: select them as text or float8).
pub(crate) fn pg_row(row: &PgRow) -> Vec<Cell> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let cell = match column.type_info().name() {
                "FLOAT8" => row.try_get::<Option<f64>, _>(i).map(|v| v.map(Cell::Real)),
                "FLOAT4" => row
                    .try_get::<Option<f32>, _>(i)
                    .map(|v| v.map(|x| Cell::Real(f64::from(x)))),
                "INT8" => row.try_get::<Option<i64>, _>(i).map(|v| v.map(Cell::Int)),
                "INT4" => row
                    .try_get::<Option<i32>, _>(i)
                    .map(|v| v.map(|x| Cell::Int(i64::from(x)))),
                "INT2" => row
                    .try_get::<Option<i16>, _>(i)
                    .map(|v| v.map(|x| Cell::Int(i64::from(x)))),
                // Dates, numerics and the rest: select them as text or float8
                // (`date::text`, `close::float8`).
                _ => row
                    .try_get::<Option<String>, _>(i)
                    .map(|v| v.map(Cell::Text)),
            };
            cell.ok().flatten().unwrap_or(Cell::Null)
        })
        .collect()
}
