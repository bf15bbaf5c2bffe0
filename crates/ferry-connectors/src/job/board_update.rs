//! The monday.com board-update format: `[metadata] board_id`, `[query_config] query`,
//! `[column_mapping]`, `[validation]`, recognised by its `[query_config]` table and mapped onto
//! a SQL source and a GraphQL handler sending `change_multiple_column_values` mutations.
//! What the file does not say comes from the environment (`DATABASE_URL`,
//! `MONDAY_API_TOKEN`, `MONDAY_API_URL`).

use std::num::NonZeroUsize;
use std::time::Duration;

use ferry_core::{BatchSizing, EngineConfig, SplitStrategy};
use serde_json::{Map, Value};

use super::reader::Reader;
use super::run::DEFAULT_SHUTDOWN_GRACE;
use super::spec::{raise_concurrency, HandlerSpec, JobConfig, JobFormat, SourceSpec};
use crate::graphql::GraphqlConfig;
use crate::source::KeyBy;

/// The table whose presence marks a file as a board update.
pub(super) const MARKER_SECTION: &str = "query_config";

/// The mutation sent for each item.
const MONDAY_MUTATION: &str = "change_multiple_column_values(item_id: {{ item[item_id_column] }}, board_id: {{ board_id }}, column_values: {{ columns | graphql_string }}) { id }";

/// Reads a board update: a SQL query against `DATABASE_URL`, column mapping onto a monday.com
/// board through `MONDAY_API_URL` (default `https://api.monday.com/v2`) with
/// `MONDAY_API_TOKEN`; its `max_batch_size` and `max_concurrent_batches` are caps.
pub(super) fn board_update_job(r: &mut Reader<'_>) -> Option<JobConfig> {
    let name = r.stem();
    let board_id = match r.leaf("metadata.board_id") {
        Some(l) => Some(l.value.to_json()),
        None => {
            let line = r.section_line("metadata");
            r.err("metadata.board_id", line, "missing required key");
            None
        }
    };
    let _ = r.table("metadata");
    let query = r.required_string("query_config.query");
    let item_id_column = r
        .string("query_config.item_id_column")
        .unwrap_or_else(|| "monday_item_id".to_owned());
    let mapping: Vec<(String, String)> = r
        .string_table("column_mapping")
        .into_iter()
        .map(|(column, source)| {
            (
                column,
                format!("item[{}]", serde_json::Value::String(source)),
            )
        })
        .collect();
    if mapping.is_empty() {
        let line = r.section_line("column_mapping");
        r.err(
            "column_mapping",
            line,
            "maps no column: add entries like \"date4\" = \"fob_date\"",
        );
    }
    let mut engine = EngineConfig::standard();
    engine.name = name.clone();
    engine.dispatch.split = SplitStrategy::ladder(&[15, 5, 1]).unwrap_or_default();
    engine.shutdown_grace = DEFAULT_SHUTDOWN_GRACE;
    if let Some(n) = r
        .positive("validation.max_batch_size")
        .and_then(NonZeroUsize::new)
    {
        engine.flush = engine.flush.clone().max_items(n);
        if let BatchSizing::Adaptive(c) = &mut engine.sizing {
            c.max = n.get();
            c.initial = c.initial.min(n.get());
        }
    }
    if let Some(n) = r.positive("validation.max_concurrent_batches") {
        raise_concurrency(&mut engine, n);
    }
    if let Some(t) = r.int("validation.request_timeout_seconds", 1) {
        engine.dispatch.timeout = Duration::from_secs(t as u64);
    }
    let env = r.env;
    let database_url = env("DATABASE_URL").filter(|v| !v.is_empty());
    if database_url.is_none() {
        r.err("query_config.query", r.section_line("query_config"), "environment variable `DATABASE_URL` is not set (the database the query runs on: a SQLite path or a postgres:// URL)");
    }
    let api_url = env("MONDAY_API_URL")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "https://api.monday.com/v2".to_owned());
    let token = env("MONDAY_API_TOKEN").filter(|v| !v.is_empty());
    if token.is_none() && !r.dry_run {
        r.err("metadata", r.section_line("metadata"), "environment variable `MONDAY_API_TOKEN` is not set (needed to execute; --dry-run works without it)");
    }
    let board_id = board_id?;
    let board_text = match &board_id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut vars = Map::new();
    vars.insert("board_id".into(), board_id);
    vars.insert(
        "item_id_column".into(),
        Value::String(item_id_column.clone()),
    );
    let handler = HandlerSpec::Graphql(GraphqlConfig {
        url: api_url,
        headers: vec![("Authorization".into(), token.unwrap_or_default())],
        mutation: MONDAY_MUTATION.to_owned(),
        columns: mapping,
        vars,
        board_id: Some(board_text),
    });
    Some(JobConfig {
        on_error: super::spec::OnError::default(),
        name,
        path: r.file.path.clone(),
        stages: Vec::new(),
        source: SourceSpec::Sql {
            url: database_url?,
            query: query?,
            key: KeyBy::Column(item_id_column),
        },
        handler,
        engine,
        dead_letters: r.beside_job("dead.jsonl"),
        checkpoint: Some(r.beside_job("checkpoint.db")),
        format: JobFormat::BoardUpdate,
    })
}
