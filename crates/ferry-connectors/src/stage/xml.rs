//! The `xml` stage: parses an XML text field of each item (a query's text column, as the
//! original system kept its records) and maps its record elements to rows with the XML
//! source's mapping (`docs/job-file.md`, "XML sources"), one output item per record.
//!
//! The item's other fields named in `keep` are copied into every row it yields (a row's own
//! column of the same name wins). A document that is not well-formed, that has no record
//! element, or whose record cannot be mapped (a failed cast, a value path matching several
//! elements) dead-letters the item with the byte offset in the document and the reason.

use serde_json::Value;

use super::api::{Stage, StageError};
use crate::source::xml::{map_document, Mapping, XmlStats};

/// An `xml` stage's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlStageConfig {
    /// The item's field holding the XML document.
    pub field: String,
    /// The record element's (local) name.
    pub record: String,
    /// The columns.
    pub mapping: Mapping,
    /// Input fields copied into every output row.
    pub keep: Vec<String>,
}

/// The `xml` stage (see the module docs).
#[derive(Debug)]
pub struct XmlStage {
    config: XmlStageConfig,
    stats: XmlStats,
}

impl XmlStage {
    /// The stage for `config`; `columns_key` is where the job file holds its columns
    /// (`stage.0.columns`), for the warnings about paths that never match.
    pub fn new(config: XmlStageConfig, columns_key: &str) -> Self {
        let stats = XmlStats::new(&config.mapping, columns_key);
        XmlStage { config, stats }
    }
}

impl Stage for XmlStage {
    fn process(&self, payload: &Value) -> Result<Vec<Value>, StageError> {
        let field = &self.config.field;
        let doc = match payload.get(field) {
            Some(Value::String(doc)) => doc,
            None | Some(Value::Null) => {
                return Err(StageError::new(format!("field `{field}` is null, not XML")))
            }
            Some(_) => {
                return Err(StageError::new(format!(
                    "field `{field}` is not text, not XML"
                )))
            }
        };
        let rows = map_document(
            doc.as_bytes(),
            &self.config.record,
            &self.config.mapping,
            &self.stats,
        )?;
        Ok(rows
            .into_iter()
            .map(|mut row| {
                for k in &self.config.keep {
                    if !row.contains_key(k) {
                        row.insert(k.clone(), payload.get(k).cloned().unwrap_or(Value::Null));
                    }
                }
                Value::Object(row)
            })
            .collect())
    }

    fn warnings(&self) -> Vec<String> {
        self.stats.warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::xml::Field;
    use serde_json::json;

    fn stage() -> XmlStage {
        let columns = [
            ("id", "@id as integer"),
            ("name", "name"),
            ("n", "count(i)"),
        ]
        .into_iter()
        .map(|(c, p)| (c.to_owned(), Field::parse(p).unwrap()))
        .collect();
        XmlStage::new(
            XmlStageConfig {
                field: "doc".into(),
                record: "order".into(),
                mapping: Mapping { columns },
                keep: vec!["batch".into()],
            },
            "stage.0.columns",
        )
    }

    #[test]
    fn maps_each_record_of_the_field_and_keeps_fields() {
        let s = stage();
        let item = json!({"batch": 7, "doc": "<orders><order id=\"1\"><name>A &amp; B</name><i/><i/></order><order id=\"2\"><name><![CDATA[<x>]]></name></order></orders>"});
        let out = s.process(&item).unwrap();
        assert_eq!(
            out,
            vec![
                json!({"id": 1, "name": "A & B", "n": 2, "batch": 7}),
                json!({"id": 2, "name": "<x>", "n": 0, "batch": 7}),
            ]
        );
        assert!(s.warnings().is_empty());
    }

    #[test]
    fn bad_documents_name_the_reason() {
        let s = stage();
        let cases = [
            (json!({"doc": null}), "field `doc` is null"),
            (json!({"doc": 5}), "field `doc` is not text"),
            (json!({"doc": "<other/>"}), "no <order> element"),
            (json!({"doc": "<order id=\"x\"/>"}), "byte 0: "),
            (json!({"doc": "<a><order id=\"1\"><name>"}), "byte 3: "),
        ];
        for (item, want) in cases {
            let err = s.process(&item).unwrap_err().message;
            assert!(err.contains(want), "{item}: {err}");
        }
    }
}
