//! The job-file keys of an XML source (`source.type = "xml"`): where the XML comes from,
//! the record element, and the mapping from paths to columns. Every path and type is
//! checked here, so `ferry validate` names the file, line and key of a bad one.

use std::collections::BTreeMap;

use super::file::{Leaf, Val};
use super::reader::Reader;
use super::spec::SourceSpec;
use crate::source::xml::{Field, Mapping, Path};
use crate::source::{XmlConfig, XmlInput};

/// Reads an XML source's keys.
pub(super) fn read_xml_source(r: &mut Reader<'_>) -> Option<SourceSpec> {
    let path = r.string("source.path");
    let url = r.string("source.url");
    let query = r.string("source.query");
    let column = r.string("source.column");
    let record = r.required_string("source.record");
    let workers = r.positive("source.workers").unwrap_or(0);
    let key = r.key_by("source.key");
    let columns = read_mapping(r, "source");
    let input = match (path, url, query, column) {
        (Some(p), None, None, None) => Some(XmlInput::Files(r.relative(&p))),
        (None, Some(url), Some(query), Some(column)) => {
            Some(XmlInput::Query { url, query, column })
        }
        _ => {
            let line = r.section_line("source");
            r.err(
                "source.path",
                line,
                "an XML source reads either `path` (a file or a glob) or `url`, `query` and `column` (a query's text column)",
            );
            None
        }
    };
    Some(SourceSpec::Xml {
        config: XmlConfig {
            input: input?,
            record: record?,
            mapping: columns,
            workers,
        },
        key,
    })
}

/// Reads the mapping under `prefix` (`source`, `stage.0`): `PREFIX.columns.*` and
/// `PREFIX.lists.*`; no column at all is an error.
pub(super) fn read_mapping(r: &mut Reader<'_>, prefix: &str) -> Mapping {
    let mut columns = Vec::new();
    for (name, leaf) in r.table(&format!("{prefix}.columns")) {
        let key = format!("{prefix}.columns.{name}");
        if let Some(field) = field(r, &key, &leaf) {
            columns.push((name, field));
        }
    }
    columns.extend(read_lists(r, prefix));
    if columns.is_empty() {
        let line = r.section_line(prefix);
        r.err(
            &format!("{prefix}.columns"),
            line,
            format!("XML needs columns, e.g. [{prefix}.columns] id = \"@id as integer\""),
        );
    }
    Mapping { columns }
}

/// A column's field from its string, or an error at its line.
fn field(r: &mut Reader<'_>, key: &str, leaf: &Leaf) -> Option<Field> {
    let Val::Str(text) = &leaf.value else {
        let t = leaf.value.type_name();
        r.err(
            key,
            leaf.line,
            format!("expected a path string such as \"a/b as integer\", found {t}"),
        );
        return None;
    };
    match Field::parse(text) {
        Ok(f) => Some(f),
        Err(m) => {
            r.err(key, leaf.line, m);
            None
        }
    }
}

/// A list being read: its place in the file, line, path and columns.
type ListParts = (usize, Option<Path>, Vec<(String, Field)>, usize);

/// `[PREFIX.lists.NAME]`: `path` (the repeated element) and `columns.*` (paths relative to
/// it); each list is one column holding an array of objects.
fn read_lists(r: &mut Reader<'_>, prefix: &str) -> Vec<(String, Field)> {
    let mut lists: BTreeMap<String, ListParts> = BTreeMap::new();
    for (sub, leaf) in r.table(&format!("{prefix}.lists")) {
        let key = format!("{prefix}.lists.{sub}");
        let order = lists.len();
        let (name, rest) = sub.split_once('.').unwrap_or((sub.as_str(), ""));
        let entry = lists
            .entry(name.to_owned())
            .or_insert_with(|| (order, None, Vec::new(), leaf.line));
        if rest == "path" {
            match &leaf.value {
                Val::Str(p) => match Path::parse(p) {
                    Ok(path) => entry.1 = Some(path),
                    Err(m) => r.err(&key, leaf.line, m),
                },
                other => {
                    let t = other.type_name();
                    r.err(
                        &key,
                        leaf.line,
                        format!("expected a path string, found {t}"),
                    );
                }
            }
        } else if let Some(column) = rest.strip_prefix("columns.") {
            if let Some(f) = field(r, &key, &leaf) {
                entry.2.push((column.to_owned(), f));
            }
        } else {
            r.err(
                &key,
                leaf.line,
                format!("unknown key; expected {prefix}.lists.{name}.path or {prefix}.lists.{name}.columns.COLUMN"),
            );
        }
    }
    let mut out: Vec<(usize, String, Field)> = Vec::new();
    for (name, (order, path, columns, line)) in lists {
        match path {
            Some(path) if !columns.is_empty() => {
                out.push((order, name, Field::List(path, columns)))
            }
            Some(_) => r.err(
                &format!("{prefix}.lists.{name}.columns"),
                line,
                "a list needs columns (paths relative to the repeated element)",
            ),
            None => r.err(
                &format!("{prefix}.lists.{name}.path"),
                line,
                "missing required key (the repeated element, e.g. \"items/item\")",
            ),
        }
    }
    out.sort_by_key(|(order, _, _)| *order);
    out.into_iter().map(|(_, n, f)| (n, f)).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path as FsPath;

    use super::super::file::JobFile;
    use super::super::load::{validate, LoadOptions};
    use super::super::spec::SourceSpec;
    use crate::source::xml::Cast;

    fn check(text: &str) -> Result<super::super::spec::JobConfig, String> {
        let file = JobFile::parse(FsPath::new("/jobs/x.toml"), text).unwrap();
        let env = |_: &str| Some("postgres://h/db".to_owned());
        let opts = LoadOptions {
            env: Some(&env),
            ..Default::default()
        };
        validate(&file, &opts).map_err(|e| e.to_string())
    }

    const HANDLER: &str = "[handler]\ntype = \"postgres_copy\"\nurl = \"${DB}\"\ntable = \"orders\"\ncolumns_list = [\"id\"]\nkey = \"id\"\n[handler.children.lines]\ntable = \"lines\"\ncolumns_list = [\"sku\"]\nparent_key = \"order_id\"\nposition = \"n\"\n";

    #[test]
    fn an_xml_source_and_a_copy_sink_load() {
        let text = format!("[source]\ntype = \"xml\"\npath = \"d/*.xml.gz\"\nrecord = \"order\"\nkey = \"id\"\n[source.columns]\nid = \"@id as integer\"\n[source.lists.lines]\npath = \"items/item\"\ncolumns.sku = \"@sku\"\n{HANDLER}");
        let job = check(&text).unwrap();
        let SourceSpec::Xml { config, .. } = &job.source else {
            panic!("{:?}", job.source)
        };
        assert_eq!(
            config.input,
            crate::source::XmlInput::Files("/jobs/d/*.xml.gz".into())
        );
        assert_eq!(config.mapping.columns.len(), 2);
        assert!(matches!(
            config.mapping.columns[0].1,
            crate::source::xml::Field::Value(_, Cast::Integer)
        ));
        let super::super::spec::HandlerSpec::PgCopy(c) = &job.handler else {
            panic!()
        };
        assert_eq!(c.children[0].position.as_deref(), Some("n"));
    }

    #[test]
    fn mapping_errors_name_file_line_and_key() {
        let text = format!("[source]\ntype = \"xml\"\npath = \"a.xml\"\nrecord = \"order\"\n[source.columns]\nid = \"@id as money\"\nname = \"a//b\"\nn = 5\n[source.lists.lines]\ncolumns.sku = \"@sku\"\n{HANDLER}");
        let err = check(&text).unwrap_err();
        assert!(err.contains("/jobs/x.toml:6: `source.columns.id`: `money` is not a type; expected text, integer"), "{err}");
        assert!(
            err.contains("/jobs/x.toml:7: `source.columns.name`: `a//b`: `` is not an element"),
            "{err}"
        );
        assert!(
            err.contains("/jobs/x.toml:8: `source.columns.n`: expected a path string"),
            "{err}"
        );
        assert!(
            err.contains("/jobs/x.toml:10: `source.lists.lines.path`: missing required key"),
            "{err}"
        );
    }
}
