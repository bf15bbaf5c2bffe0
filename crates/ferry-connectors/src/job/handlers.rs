//! The job's handler: built from its [`HandlerSpec`], dispatching each batch to the handler
//! or sink the job names; and how a dry run describes a request.

use std::path::PathBuf;

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

/// The job's handler.
pub(super) enum JobHandler {
    Graphql(Box<GraphqlHandler>),
    Http(Box<HttpHandler>),
    Exec(ExecHandler),
    Sql(SqlSink),
    PgCopy(CopySink),
    Jsonl(JsonlSink),
}

impl Handler<Value, Value> for JobHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        match self {
            JobHandler::Graphql(h) => h.call(batch),
            JobHandler::Http(h) => h.call(batch),
            JobHandler::Exec(h) => h.call(batch),
            JobHandler::Sql(h) => h.call(batch),
            JobHandler::PgCopy(h) => h.call(batch),
            JobHandler::Jsonl(h) => h.call(batch),
        }
    }
}

/// Appends `{"key", "item"}` lines to a file, one write per batch.
pub(super) struct JsonlSink {
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
            match file.write_all(&buf).await {
                Ok(()) => BatchOutcome::ok(std::iter::repeat_n(Value::Null, batch.len())),
                Err(e) => BatchOutcome::retry(None, format!("{}: {e}", self.path.display())),
            }
        })
    }
}

/// Builds the job's handler (connecting and checking what it needs first) and the counters
/// of its ambiguous failures.
pub(super) async fn open_handler(
    spec: &HandlerSpec,
) -> Result<(JobHandler, std::sync::Arc<CallCounters>), Error> {
    Ok(match spec {
        HandlerSpec::Graphql(cfg) => {
            let mut h = GraphqlHandler::new(cfg.clone())?;
            h.preflight().await?;
            h.ask_board().await?;
            let c = h.counters();
            (JobHandler::Graphql(Box::new(h)), c)
        }
        HandlerSpec::Http(cfg) => {
            let h = HttpHandler::new(cfg.clone())?;
            h.preflight().await?;
            let c = h.counters();
            (JobHandler::Http(Box::new(h)), c)
        }
        HandlerSpec::Exec(cfg) => {
            let h = ExecHandler::new(cfg.clone())?;
            let c = h.counters();
            (JobHandler::Exec(h), c)
        }
        HandlerSpec::Sql(cfg) => (
            JobHandler::Sql(SqlSink::open(cfg.clone()).await?),
            CallCounters::shared(),
        ),
        HandlerSpec::PgCopy(cfg) => (
            JobHandler::PgCopy(CopySink::open(cfg.clone()).await?),
            CallCounters::shared(),
        ),
        HandlerSpec::Jsonl { path } => (
            JobHandler::Jsonl(JsonlSink::open(path.clone()).await?),
            CallCounters::shared(),
        ),
    })
}

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
