//! Reading a job file into line-numbered leaves.
//!
//! The file is parsed with `toml_edit`, which keeps spans, and flattened into dotted keys
//! (`dispatch.timeout`, `column_mapping.date4`) each with its value and 1-based line, in
//! document order; the tables of an array of tables (`[[stage]]`) are numbered from 0
//! (`stage.0.type`). `--set key=value` overrides replace or add leaves (line 0). The `reader`
//! then reads the leaves a format asks for and reports every problem at once; whatever was
//! never read is an unknown key.

use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, Value as TomlValue};

use crate::error::Error;

/// A scalar or array value from a job file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Val>),
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Int(_) => "an integer",
            Val::Float(_) => "a float",
            Val::Bool(_) => "a boolean",
            Val::Array(_) => "an array",
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Val::Str(s) => serde_json::Value::String(s.clone()),
            Val::Int(i) => serde_json::Value::from(*i),
            Val::Float(f) => serde_json::Value::from(*f),
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Array(a) => serde_json::Value::Array(a.iter().map(Val::to_json).collect()),
        }
    }
}

/// One leaf: a dotted key, its value, and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) key: String,
    pub(crate) value: Val,
    /// 1-based line in the file; 0 for a `--set` override.
    pub(crate) line: usize,
}

/// A parsed job file.
#[derive(Debug)]
pub(crate) struct JobFile {
    pub(crate) path: PathBuf,
    pub(crate) leaves: Vec<Leaf>,
}

impl JobFile {
    /// Reads and flattens `path`. A syntax error names the file and line.
    pub(crate) fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let doc = ImDocument::parse(text.to_owned()).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            Error::Config {
                file: path.to_owned(),
                line,
                key: String::new(),
                message: format!("invalid TOML: {}", e.message()),
            }
        })?;
        let mut leaves = Vec::new();
        flatten_table(doc.as_table(), "", text, &mut leaves);
        Ok(JobFile {
            path: path.to_owned(),
            leaves,
        })
    }

    /// Applies `--set key=value` overrides: the value is read as TOML (`8`, `"x"`, `true`,
    /// `[15, 5, 1]`), or taken as a plain string if it is not valid TOML.
    pub(crate) fn apply_sets(&mut self, sets: &[String]) -> Result<(), Error> {
        for set in sets {
            let Some((key, raw)) = set.split_once('=') else {
                return Err(Error::Config {
                    file: self.path.clone(),
                    line: 0,
                    key: set.clone(),
                    message: "--set expects key=value".into(),
                });
            };
            let key = key.trim().to_owned();
            let value = match format!("v = {raw}").parse::<ImDocument<String>>() {
                Ok(doc) => doc
                    .get("v")
                    .and_then(Item::as_value)
                    .and_then(|v| convert(v, ""))
                    .unwrap_or(Val::Str(raw.to_owned())),
                Err(_) => Val::Str(raw.to_owned()),
            };
            self.leaves.retain(|l| l.key != key);
            self.leaves.push(Leaf {
                key,
                value,
                line: 0,
            });
        }
        Ok(())
    }

    /// Whether any leaf lives under the table `section`.
    pub(crate) fn has_section(&self, section: &str) -> bool {
        let prefix = format!("{section}.");
        self.leaves.iter().any(|l| l.key.starts_with(&prefix))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn flatten_table(table: &toml_edit::Table, prefix: &str, text: &str, out: &mut Vec<Leaf>) {
    for (key, item) in table.iter() {
        let key_span = table.key(key).and_then(|k| k.span());
        let dotted = join(prefix, key);
        let line = key_span
            .or_else(|| item.span())
            .map_or(0, |s| line_of(text, s.start));
        match item {
            Item::Table(t) => flatten_table(t, &dotted, text, out),
            Item::Value(TomlValue::InlineTable(t)) => {
                for (k, v) in t.iter() {
                    let sub = join(&dotted, k);
                    if let Some(val) = convert(v, &sub) {
                        let l = t
                            .key(k)
                            .and_then(|k| k.span())
                            .map_or(line, |s| line_of(text, s.start));
                        out.push(Leaf {
                            key: sub,
                            value: val,
                            line: l,
                        });
                    }
                }
            }
            Item::Value(v) => {
                if let Some(val) = convert(v, &dotted) {
                    out.push(Leaf {
                        key: dotted,
                        value: val,
                        line,
                    });
                }
            }
            // `[[stage]]` blocks: `stage.0.type`, `stage.1.columns.id`, ... (0-based, in
            // document order), so `--set stage.0.workers=4` reaches one of them.
            Item::ArrayOfTables(tables) => {
                for (i, t) in tables.iter().enumerate() {
                    flatten_table(t, &format!("{dotted}.{i}"), text, out);
                }
            }
            Item::None => out.push(Leaf {
                key: dotted,
                value: Val::Str("<array of tables>".into()),
                line,
            }),
        }
    }
}

fn convert(v: &TomlValue, _key: &str) -> Option<Val> {
    Some(match v {
        TomlValue::String(s) => Val::Str(s.value().clone()),
        TomlValue::Integer(i) => Val::Int(*i.value()),
        TomlValue::Float(f) => Val::Float(*f.value()),
        TomlValue::Boolean(b) => Val::Bool(*b.value()),
        TomlValue::Datetime(d) => Val::Str(d.value().to_string()),
        TomlValue::Array(a) => Val::Array(a.iter().filter_map(|x| convert(x, _key)).collect()),
        TomlValue::InlineTable(_) => return None,
    })
}

/// Expands `${NAME}` and `${NAME:-default}` from the environment. `Err(name)` for a
/// variable that is not set and has no default.
pub(crate) fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_with_lines_in_document_order() {
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n\n[handler.headers]\nAuthorization = \"x\"\n[dispatch]\nsplit = [15, 5, 1]\n";
        let f = JobFile::parse(Path::new("job.toml"), text).unwrap();
        let keys: Vec<(&str, usize)> = f.leaves.iter().map(|l| (l.key.as_str(), l.line)).collect();
        assert_eq!(
            keys,
            vec![
                ("source.type", 2),
                ("source.path", 3),
                ("handler.headers.Authorization", 6),
                ("dispatch.split", 8)
            ]
        );
        assert_eq!(
            f.leaves[3].value,
            Val::Array(vec![Val::Int(15), Val::Int(5), Val::Int(1)])
        );
    }

    #[test]
    fn arrays_of_tables_are_numbered_from_zero() {
        let text = "[[stage]]\ntype = \"xml\"\n[stage.columns]\nid = \"@id\"\n\n[[stage]]\ntype = \"other\"\n";
        let f = JobFile::parse(Path::new("job.toml"), text).unwrap();
        let keys: Vec<(&str, usize)> = f.leaves.iter().map(|l| (l.key.as_str(), l.line)).collect();
        assert_eq!(
            keys,
            vec![
                ("stage.0.type", 2),
                ("stage.0.columns.id", 4),
                ("stage.1.type", 7)
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = JobFile::parse(Path::new("job.toml"), "[source]\ntype = \n").unwrap_err();
        match err {
            Error::Config {
                line, ref message, ..
            } => {
                assert_eq!(line, 2, "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sets_override_and_parse_as_toml() {
        let mut f = JobFile::parse(Path::new("j.toml"), "[dispatch]\ntimeout = \"5s\"\n").unwrap();
        f.apply_sets(&[
            "dispatch.timeout=10s".into(),
            "dispatch.max_concurrency=8".into(),
        ])
        .unwrap();
        assert_eq!(f.leaves[0].value, Val::Str("10s".into()));
        assert_eq!(f.leaves[1].value, Val::Int(8));
        assert_eq!(f.leaves[1].line, 0);
        assert!(f.apply_sets(&["novalue".into()]).is_err());
    }

    #[test]
    fn interpolation() {
        let env = |n: &str| (n == "HOME_X").then(|| "/h".to_owned());
        assert_eq!(interpolate("${HOME_X}/a", &env).unwrap(), "/h/a");
        assert_eq!(
            interpolate("${NOPE:-https://x/v2}", &env).unwrap(),
            "https://x/v2"
        );
        assert_eq!(interpolate("${NOPE}", &env).unwrap_err(), "NOPE");
        assert_eq!(interpolate("plain $ {x}", &env).unwrap(), "plain $ {x}");
    }
}
