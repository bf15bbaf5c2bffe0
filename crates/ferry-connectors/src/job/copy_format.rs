//! The job-file keys of the PostgreSQL `COPY` sink (`handler.type = "postgres_copy"`).

use std::collections::BTreeMap;

use super::file::Val;
use super::reader::Reader;
use super::spec::HandlerSpec;
use crate::sink::{ChildTable, CopySinkConfig};

/// Reads a `postgres_copy` handler: `url`, `table`, `columns_list`, `key`, and
/// `[handler.children.FIELD]` tables (`table`, `columns_list`, `parent_key`, `position`).
pub(super) fn read_copy_handler(r: &mut Reader<'_>) -> Option<HandlerSpec> {
    let url = r.required_string("handler.url");
    let table = r.required_string("handler.table");
    let columns = r.string_list("handler.columns_list");
    if columns.is_empty() {
        let line = r.section_line("handler");
        r.err(
            "handler.columns_list",
            line,
            "the COPY sink needs the payload fields to write, e.g. [\"id\", \"name\"]",
        );
    }
    let key = r.string("handler.key");
    let children = read_children(r);
    if !children.is_empty() && key.is_none() {
        let line = r.section_line("handler");
        r.err(
            "handler.key",
            line,
            "child tables need the parent's key column (their rows are joined to it)",
        );
    }
    url.zip(table).map(|(url, table)| {
        HandlerSpec::PgCopy(CopySinkConfig {
            url,
            table,
            columns,
            key,
            children,
        })
    })
}

#[derive(Default)]
struct Child {
    order: usize,
    line: usize,
    table: Option<String>,
    columns: Vec<String>,
    parent_key: Option<String>,
    position: Option<String>,
}

/// Reads `[handler.children.FIELD]` tables (`table`, `columns_list`, `parent_key`,
/// `position`): shared by the `postgres_copy` and `sql` handlers.
pub(super) fn read_children(r: &mut Reader<'_>) -> Vec<ChildTable> {
    let mut children: BTreeMap<String, Child> = BTreeMap::new();
    for (sub, leaf) in r.table("handler.children") {
        let key = format!("handler.children.{sub}");
        let order = children.len();
        let (field, rest) = sub.split_once('.').unwrap_or((sub.as_str(), ""));
        let child = children.entry(field.to_owned()).or_insert_with(|| Child {
            order,
            line: leaf.line,
            ..Child::default()
        });
        match (rest, &leaf.value) {
            ("table" | "parent_key" | "position", Val::Str(s)) => {
                let slot = match rest {
                    "table" => &mut child.table,
                    "parent_key" => &mut child.parent_key,
                    _ => &mut child.position,
                };
                *slot = Some(s.clone());
            }
            ("columns_list", Val::Array(items)) if items.iter().all(|v| matches!(v, Val::Str(_))) => {
                child.columns = items
                    .iter()
                    .filter_map(|v| match v {
                        Val::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
            }
            ("table" | "parent_key" | "position", other) => {
                let t = other.type_name();
                r.err(&key, leaf.line, format!("expected a string, found {t}"));
            }
            ("columns_list", other) => {
                let t = other.type_name();
                r.err(&key, leaf.line, format!("expected an array of strings, found {t}"));
            }
            _ => r.err(
                &key,
                leaf.line,
                format!("unknown key; expected handler.children.{field}.table, .columns_list, .parent_key or .position"),
            ),
        }
    }
    let mut out: Vec<(usize, ChildTable)> = Vec::new();
    for (field, c) in children {
        let missing = |what: &str| format!("handler.children.{field}.{what}");
        match (c.table, c.parent_key, c.columns.is_empty()) {
            (Some(table), Some(parent_key), false) => out.push((
                c.order,
                ChildTable {
                    field,
                    table,
                    columns: c.columns,
                    parent_key,
                    position: c.position,
                },
            )),
            (None, _, _) => r.err(&missing("table"), c.line, "missing required key"),
            (_, None, _) => r.err(
                &missing("parent_key"),
                c.line,
                "missing required key (the child table's column for the parent's key)",
            ),
            (_, _, true) => r.err(
                &missing("columns_list"),
                c.line,
                "missing required key (the list objects' fields to write)",
            ),
        }
    }
    out.sort_by_key(|(o, _)| *o);
    out.into_iter().map(|(_, c)| c).collect()
}
