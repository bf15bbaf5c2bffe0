//! GraphQL aliased-mutation batches: one request carries N mutations as aliases `a0..aN`,
//! and errors that name an alias are mapped back to their item.
//!
//! Per item, the handler evaluates the `columns` expressions (e.g. `date4 = item.fob_date`)
//! into an object and renders the `mutation` template (one field, e.g.
//! `change_multiple_column_values(item_id: {{ item.id }}, board_id: {{ board_id }},
//! column_values: {{ columns | graphql_string }}) { id }`) with `item` (the source row),
//! `key`, `index`, `columns` and the job's variables. A row that cannot be rendered is
//! dead-lettered with the template error; the rest of the batch still goes.
//!
//! With a [`board_id`](GraphqlConfig::board_id) (the monday.com board-update format sets
//! it), the handler asks the board for its columns' types once per run
//! ([`GraphqlHandler::ask_board`]) and shapes each `columns` value for its column's type
//! ([`crate::monday`]): a value that cannot be shaped is that item's error, naming the column
//! and the value; a `null` or blank value leaves the column out.
//!
//! Responses: per-alias `errors[].path[0]` -> that item fatal with the API's message; aliases
//! with data -> succeeded (the data is the result); a rate-limit or complexity-budget error
//! in the body ([`classify::body_backpressure`]) with no data -> `Retry` after the wait it
//! names; other errors naming no alias with no data -> `Split` (something in the batch broke
//! it); status codes and transport errors as in [`crate::classify`].

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::{Batch, BatchOutcome, BoxFuture, Handler, Item, ItemOutcome};
use minijinja::Value as Ctx;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use crate::classify::{self, CallCounters};
use crate::error::Error;
use crate::monday::{self, BoardColumn};
use crate::template::Templates;

const MUTATION: &str = "handler.mutation";

/// Settings of a [`GraphqlHandler`]. Header values may hold secrets: they are never logged
/// or printed (dry runs show `***`).
#[derive(Debug, Clone, Default)]
pub struct GraphqlConfig {
    /// The endpoint, e.g. `https://api.monday.com/v2`.
    pub url: String,
    /// Request headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// The per-item mutation field template.
    pub mutation: String,
    /// `columns` entries: output name -> minijinja expression over `item` (in order).
    pub columns: Vec<(String, String)>,
    /// Job-level variables available to the templates (e.g. `board_id`).
    pub vars: Map<String, Value>,
    /// The monday.com board whose column types shape the `columns` values
    /// ([`GraphqlHandler::ask_board`]); `None`: values are sent as they are evaluated.
    pub board_id: Option<String>,
}

/// What the handler knows of its board's columns.
#[derive(Debug, Clone)]
enum Board {
    /// No board: values are sent as evaluated.
    None,
    /// A board whose columns were not asked for (yet, or the question failed: the message).
    Unknown(String, Option<String>),
    /// Mapped column id -> its column on the board.
    Known(String, HashMap<String, BoardColumn>),
}

/// Sends batches as aliased GraphQL mutations.
#[derive(Debug)]
pub struct GraphqlHandler {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    header_names: Vec<String>,
    templates: Templates,
    columns: Vec<(String, String)>,
    vars: Map<String, Value>,
    board: Board,
    counters: Arc<CallCounters>,
}

impl GraphqlHandler {
    /// Compiles the templates and prepares the client; every error names its key.
    pub fn new(config: GraphqlConfig) -> Result<Self, Error> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| Error::Http {
                url: config.url.clone(),
                message: format!("invalid URL: {e}"),
            })?
            .to_string();
        let mut headers = HeaderMap::new();
        let mut header_names = Vec::new();
        for (name, value) in &config.headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::Http {
                url: url.clone(),
                message: format!("invalid header name `{name}`"),
            })?;
            let mut v = HeaderValue::from_str(value).map_err(|_| Error::Http {
                url: url.clone(),
                message: format!("invalid value for header `{name}`"),
            })?;
            v.set_sensitive(true);
            headers.insert(n, v);
            header_names.push(name.clone());
        }
        let mut templates = Templates::new();
        templates.add(MUTATION, &config.mutation)?;
        for (name, expr) in &config.columns {
            templates.add(
                &format!("columns.{name}"),
                &format!("{{{{ ({expr}) | json }}}}"),
            )?;
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Http {
                url: url.clone(),
                message: e.to_string(),
            })?;
        Ok(GraphqlHandler {
            client,
            url,
            headers,
            header_names,
            templates,
            columns: config.columns,
            vars: config.vars,
            board: match config.board_id {
                Some(id) => Board::Unknown(id, None),
                None => Board::None,
            },
            counters: CallCounters::shared(),
        })
    }

    /// Checks that the endpoint accepts connections; see [`classify::preflight`].
    pub async fn preflight(&self) -> Result<(), Error> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| Error::Http {
            url: self.url.clone(),
            message: e.to_string(),
        })?;
        classify::preflight(&url).await
    }

    /// Asks the board (if the handler has one) for its columns' types; once that succeeded,
    /// later calls do nothing. Every mapped column must be on the board. After an error the
    /// handler sends values as evaluated ([`describe_columns`](Self::describe_columns) says
    /// why): a dry run goes on, a run stops before sending anything.
    pub async fn ask_board(&mut self) -> Result<(), Error> {
        let Board::Unknown(board_id, _) = &self.board else {
            return Ok(());
        };
        let board_id = board_id.clone();
        let empty_token = self
            .headers
            .get(reqwest::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().trim_ascii().is_empty());
        let asked = if empty_token {
            Err("no API token (the Authorization header is empty)".to_owned())
        } else {
            monday::fetch_columns(&self.client, &self.url, &self.headers, &board_id).await
        };
        let result = asked.and_then(|all| {
            let mut mapped = HashMap::new();
            for (name, _) in &self.columns {
                let Some(column) = all.iter().find(|c| &c.id == name) else {
                    let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
                    return Err(format!(
                        "the board has no column `{name}` (its columns: {})",
                        ids.join(", ")
                    ));
                };
                mapped.insert(name.clone(), column.clone());
            }
            Ok(mapped)
        });
        match result {
            Ok(mapped) => {
                self.board = Board::Known(board_id, mapped);
                Ok(())
            }
            Err(message) => {
                let e = Error::Board {
                    url: self.url.clone(),
                    board_id: board_id.clone(),
                    message,
                };
                self.board = Board::Unknown(board_id, Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// What the handler knows of its board, one line per mapped column (`date4: date (FOB
    /// Date)`); empty without a board.
    pub fn describe_columns(&self) -> String {
        match &self.board {
            Board::None => String::new(),
            Board::Unknown(id, why) => format!(
                "column types of board {id}: not known ({}); values are shown as evaluated",
                why.as_deref().unwrap_or("not asked")
            ),
            Board::Known(id, mapped) => {
                let mut out = format!("column types of board {id} (asked once for this run):");
                for (name, _) in &self.columns {
                    if let Some(c) = mapped.get(name) {
                        out.push_str(&format!("\n  {name}: {} ({})", c.kind, c.title));
                    }
                }
                out
            }
        }
    }

    /// The handler's counters (ambiguous failures).
    pub fn counters(&self) -> Arc<CallCounters> {
        Arc::clone(&self.counters)
    }

    /// Renders one item's mutation field.
    pub fn render_field(&self, item: &Item<Value>) -> Result<String, Error> {
        let key = item.key().to_string();
        let row = Ctx::from_serialize(item.payload());
        let mut columns = Map::new();
        for (name, _) in &self.columns {
            let text = self.templates.render(
                &format!("columns.{name}"),
                &Ctx::from_serialize(json!({ "item": item.payload() })),
                Some(&key),
            )?;
            let value: Value = serde_json::from_str(&text).map_err(|e| Error::Template {
                template: format!("columns.{name}"),
                key: Some(key.clone()),
                message: e.to_string(),
            })?;
            let kind = match &self.board {
                Board::Known(_, mapped) => mapped.get(name).map(|c| c.kind.as_str()),
                _ => None,
            };
            let value = match kind {
                None => Some(value),
                Some(kind) => {
                    monday::format_value(kind, &value).map_err(|message| Error::ColumnValue {
                        key: key.clone(),
                        column: name.clone(),
                        kind: kind.to_owned(),
                        value: value.to_string(),
                        message,
                    })?
                }
            };
            if let Some(value) = value {
                columns.insert(name.clone(), value);
            }
        }
        let mut ctx = self.vars.clone();
        ctx.insert("key".into(), Value::String(key.clone()));
        ctx.insert("index".into(), Value::from(item.index()));
        ctx.insert("columns".into(), Value::Object(columns));
        let mut ctx = Ctx::from_serialize(&ctx);
        ctx = minijinja::context! { item => row, ..ctx };
        self.templates.render(MUTATION, &ctx, Some(&key))
    }

    /// The request body for `fields` (alias, field) pairs.
    pub fn request_body(fields: &[(String, String)]) -> Value {
        let mut query = String::from("mutation {");
        for (alias, field) in fields {
            query.push(' ');
            query.push_str(alias);
            query.push_str(": ");
            query.push_str(field);
        }
        query.push_str(" }");
        json!({ "query": query })
    }

    /// What a dry run prints: method, URL, header names (values masked) and the body.
    pub fn describe_request(&self, items: &[Item<Value>]) -> String {
        let mut fields = Vec::new();
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match self.render_field(item) {
                Ok(f) => fields.push((format!("a{i}"), f)),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let headers: Vec<String> = self
            .header_names
            .iter()
            .map(|h| format!("{h}: ***"))
            .collect();
        let body = serde_json::to_string_pretty(&Self::request_body(&fields)).unwrap_or_default();
        let mut out = self.describe_columns();
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "POST {}\n{}\n{}",
            self.url,
            headers.join("\n"),
            body
        ));
        for e in errors {
            out.push_str("\nnot rendered: ");
            out.push_str(&e);
        }
        out
    }

    async fn send(&self, batch: &Batch<Value>) -> BatchOutcome<Value> {
        let mut outcomes: Vec<Option<ItemOutcome<Value>>> = Vec::with_capacity(batch.len());
        let mut fields = Vec::with_capacity(batch.len());
        let mut alias_of: HashMap<String, usize> = HashMap::with_capacity(batch.len());
        for (i, item) in batch.items().iter().enumerate() {
            match self.render_field(item) {
                Ok(field) => {
                    let alias = format!("a{i}");
                    alias_of.insert(alias.clone(), i);
                    fields.push((alias, field));
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(ItemOutcome::Fatal(e.to_string()))),
            }
        }
        if fields.is_empty() {
            return BatchOutcome::Done(outcomes.into_iter().flatten().collect());
        }
        let request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .json(&Self::request_body(&fields));
        let text = match classify::exchange(request, &self.counters).await {
            Ok(text) => text,
            Err(outcome) => return outcome,
        };
        let body: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return BatchOutcome::retry(None, format!("invalid JSON in response: {e}")),
        };
        let data = body.get("data").and_then(Value::as_object);
        let any_data = data.is_some_and(|d| d.values().any(|v| !v.is_null()));
        if !any_data {
            if let Some(after) = classify::body_backpressure(&body) {
                // Nothing was applied: the API asks for time, the batch is not at fault.
                return BatchOutcome::throttled(
                    after,
                    format!("GraphQL back-pressure: {}", classify::body_message(&text)),
                );
            }
        }
        let mut alias_errors: HashMap<usize, String> = HashMap::new();
        let mut batch_errors = Vec::new();
        for err in body
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown GraphQL error")
                .to_owned();
            let alias = err
                .pointer("/path/0")
                .and_then(Value::as_str)
                .and_then(|a| alias_of.get(a));
            match alias {
                Some(&i) => {
                    alias_errors.insert(i, message);
                }
                None => batch_errors.push(message),
            }
        }
        if !batch_errors.is_empty() && !any_data && alias_errors.is_empty() {
            return BatchOutcome::split(format!(
                "GraphQL error naming no alias: {}",
                batch_errors.join("; ")
            ));
        }
        for (alias, i) in &alias_of {
            let outcome = if let Some(message) = alias_errors.remove(i) {
                ItemOutcome::Fatal(message)
            } else {
                match data.and_then(|d| d.get(alias)) {
                    Some(v) if !v.is_null() => ItemOutcome::Ok(v.clone()),
                    _ if !batch_errors.is_empty() => ItemOutcome::Retry(batch_errors.join("; ")),
                    _ => ItemOutcome::Retry(format!("no result for alias {alias}")),
                }
            };
            outcomes[*i] = Some(outcome);
        }
        BatchOutcome::Done(
            outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| ItemOutcome::Retry("no outcome".into())))
                .collect(),
        )
    }
}

impl Handler<Value, Value> for GraphqlHandler {
    fn call<'a>(&'a self, batch: &'a Batch<Value>) -> BoxFuture<'a, BatchOutcome<Value>> {
        Box::pin(self.send(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> GraphqlHandler {
        GraphqlHandler::new(GraphqlConfig {
            url: "http://127.0.0.1:9/v2".into(),
            headers: vec![("Authorization".into(), "secret-token".into())],
            mutation: "change_multiple_column_values(item_id: {{ item.id }}, board_id: {{ board_id }}, column_values: {{ columns | graphql_string }}) { id }".into(),
            columns: vec![("date4".into(), "item.fob_date".into()), ("country".into(), "item.country".into())],
            vars: serde_json::from_value(json!({"board_id": 42})).unwrap(),
            board_id: None,
        })
        .unwrap()
    }

    #[test]
    fn renders_an_aliased_field_with_double_encoded_columns() {
        let h = handler();
        let item = Item::new(
            "7",
            0,
            json!({"id": 7, "fob_date": "2024-01-02", "country": "US"}),
        );
        let field = h.render_field(&item).unwrap();
        assert_eq!(
            field,
            r#"change_multiple_column_values(item_id: 7, board_id: 42, column_values: "{\"date4\":\"2024-01-02\",\"country\":\"US\"}") { id }"#
        );
        let body = GraphqlHandler::request_body(&[("a0".into(), field)]);
        assert!(body["query"]
            .as_str()
            .unwrap()
            .starts_with("mutation { a0: change_multiple_column_values("));
    }

    #[test]
    fn dry_run_masks_secrets_and_names_unrenderable_rows() {
        let h = handler();
        let good = Item::new(
            "7",
            0,
            json!({"id": 7, "fob_date": "2024-01-02", "country": "US"}),
        );
        let bad = Item::new("8", 1, json!({"id": 8}));
        let text = h.describe_request(&[good, bad]);
        assert!(!text.contains("secret-token"), "{text}");
        assert!(text.contains("Authorization: ***"));
        assert!(
            text.contains("not rendered") && text.contains("`8`"),
            "{text}"
        );
    }
}
