//! A handler made from its spec: [`SpecHandler::start`] turns a [`HandlerSpec`] (a job
//! file's `[handler]`, or a `[handler.NAME]` table of the service's configuration file) into
//! the handler that runs, checked before the first item (the HTTP and GraphQL endpoints
//! accept connections, the board's columns are known, the exec children started, the SQL
//! database and the output file open). `ferry run` and the job service build their handlers
//! here, so a kind behaves the same under both.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, Item};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::spec::{HandlerSpec, JobConfig};
use crate::classify::CallCounters;
use crate::error::Error;
use crate::exec::ExecHandler;
use crate::graphql::GraphqlHandler;
use crate::http::HttpHandler;
use crate::sink::{CopySink, SqlSink};

/// A running handler of any kind a spec names.
pub struct SpecHandler {
    kind: Kind,
    counters: Arc<CallCounters>,
}

enum Kind {
    Graphql(Box<GraphqlHandler>),
    Http(Box<HttpHandler>),
    Exec(ExecHandler),
    Sql(SqlSink),
    PgCopy(CopySink),
    Jsonl(JsonlSink),
}

impl std::fmt::Debug for SpecHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Graphql(_) => "graphql",
            Kind::Http(_) => "http",
            Kind::Exec(_) => "exec",
            Kind::Sql(_) => "sql",
            Kind::PgCopy(_) => "postgres_copy",
            Kind::Jsonl(_) => "jsonl",
        };
        f.debug_struct("SpecHandler").field("kind", &kind).finish()
    }
}

impl SpecHandler {
    /// Builds and checks the handler `spec` describes (see the module docs); the error says
    /// what could not be reached or started.
    pub async fn start(spec: &HandlerSpec) -> Result<Self, Error> {
        let (kind, counters) = match spec {
            HandlerSpec::Graphql(cfg) => {
                let mut h = GraphqlHandler::new(cfg.clone())?;
                h.preflight().await?;
                h.ask_board().await?;
                let c = h.counters();
                (Kind::Graphql(Box::new(h)), c)
            }
            HandlerSpec::Http(cfg) => {
                let h = HttpHandler::new(cfg.clone())?;
                h.preflight().await?;
                let c = h.counters();
                (Kind::Http(Box::new(h)), c)
            }
            HandlerSpec::Exec(cfg) => {
                let h = ExecHandler::new(cfg.clone())?;
                let c = h.counters();
                (Kind::Exec(h), c)
            }
            HandlerSpec::Sql(cfg) => (
                Kind::Sql(SqlSink::open(cfg.clone()).await?),
                CallCounters::shared(),
            ),
            HandlerSpec::PgCopy(cfg) => (
                Kind::PgCopy(CopySink::open(cfg.clone()).await?),
                CallCounters::shared(),
            ),
            HandlerSpec::Jsonl { path } => (
                Kind::Jsonl(JsonlSink::open(path.clone()).await?),
                CallCounters::shared(),
            ),
        };
        Ok(SpecHandler { kind, counters })
    }

    /// The handler's counters (ambiguous failures: calls that failed after the request was
    /// sent).
    pub fn counters(&self) -> Arc<CallCounters> {
        Arc::clone(&self.counters)
    }
}

impl Handler<Value, Value> for SpecHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        match &self.kind {
            Kind::Graphql(h) => h.call(batch),
            Kind::Http(h) => h.call(batch),
            Kind::Exec(h) => h.call(batch),
            Kind::Sql(h) => h.call(batch),
            Kind::PgCopy(h) => h.call(batch),
            Kind::Jsonl(h) => h.call(batch),
        }
    }
}

/// Appends `{"key", "item"}` lines to a file, one write per batch.
struct JsonlSink {
    file: tokio::sync::Mutex<tokio::fs::File>,
    path: PathBuf,
}

impl JsonlSink {
    async fn open(path: PathBuf) -> Result<Self, Error> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        Ok(JsonlSink {
            file: tokio::sync::Mutex::new(file),
            path,
        })
    }
}

impl Handler<Value, Value> for JsonlSink {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(batch.len() * 64);
            for item in batch.items() {
                if let Err(e) = serde_json::to_writer(
                    &mut buf,
                    &json!({ "key": item.key(), "item": item.payload() }),
                ) {
                    return BatchOutcome::fatal(e.to_string());
                }
                buf.push(b'\n');
            }
            let mut file = self.file.lock().await;
            // Tokio's file hands the write to a blocking thread: without the flush a batch
            // would be confirmed before its lines are in the file (and lost if the run ends).
            let written = match file.write_all(&buf).await {
                Ok(()) => file.flush().await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => BatchOutcome::ok(std::iter::repeat_n(Value::Null, batch.len())),
                Err(e) => BatchOutcome::retry(None, format!("{}: {e}", self.path.display())),
            }
        })
    }
}

/// How a dry run describes the request a batch of `items` would make.
pub(super) fn describe(
    job: &JobConfig,
    graphql: Option<&GraphqlHandler>,
    http: Option<&HttpHandler>,
    items: &[Item<Value>],
) -> String {
    match &job.handler {
        HandlerSpec::Graphql(_) => graphql
            .map(|h| h.describe_request(items))
            .unwrap_or_default(),
        HandlerSpec::Http(_) => http.map(|h| h.describe_request(items)).unwrap_or_default(),
        HandlerSpec::Exec(cfg) => format!(
            "{} {} <<< {}",
            cfg.program,
            cfg.args.join(" "),
            ExecHandler::request_line(items)
        ),
        HandlerSpec::Sql(cfg) => format!(
            "insert {} rows into {} ({})",
            items.len(),
            cfg.table,
            cfg.columns.join(", ")
        ),
        HandlerSpec::PgCopy(cfg) => format!(
            "COPY {} rows into {} ({}){}",
            items.len(),
            cfg.table,
            cfg.columns.join(", "),
            cfg.children
                .iter()
                .map(|c| format!(", their `{}` lists into {}", c.field, c.table))
                .collect::<String>()
        ),
        HandlerSpec::Jsonl { path } => {
            format!("append {} lines to {}", items.len(), path.display())
        }
    }
}

/// The database URL of a handler that writes to one (`sql`, `postgres_copy`), for
/// `ferry tune --reset`.
pub fn handler_url(spec: &HandlerSpec) -> Option<&str> {
    match spec {
        HandlerSpec::Sql(c) => Some(&c.url),
        HandlerSpec::PgCopy(c) => Some(&c.url),
        _ => None,
    }
}
