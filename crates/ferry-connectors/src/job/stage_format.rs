//! The job-file keys of the pipeline's stages (`[[stage]]`, read as `stage.0.*`,
//! `stage.1.*`, ... in document order): every stage's `type`, `name`, `workers`, `queue` and
//! `key`, then its type's own keys. A new stage type adds an arm to [`read_stage`].

use super::file::Val;
use super::reader::Reader;
use super::spec::StageSpec;
use crate::stage::{GroupStageConfig, StageKey, StageSettings, XmlStageConfig, DEFAULT_QUEUE};

/// The stage types there are, for the error about an unknown one.
const TYPES: &str = "xml, indicators or breadth";

/// Reads every `[[stage]]`, in order.
pub(super) fn read_stages(r: &mut Reader<'_>) -> Vec<StageSpec> {
    let mut indices: Vec<usize> = Vec::new();
    let mut misplaced = Vec::new();
    for leaf in &r.file.leaves {
        let Some(rest) = leaf.key.strip_prefix("stage.") else {
            continue;
        };
        let first = rest.split('.').next().unwrap_or(rest);
        match first.parse::<usize>() {
            Ok(i) if !indices.contains(&i) => indices.push(i),
            Ok(_) => {}
            Err(_) => misplaced.push((leaf.key.clone(), leaf.line)),
        }
    }
    for (key, line) in misplaced {
        r.err(
            &key,
            line,
            "stages are an array of tables: write [[stage]], not [stage]",
        );
        r.skip_section(&key);
    }
    indices.sort_unstable();
    let mut stages: Vec<StageSpec> = indices
        .into_iter()
        .filter_map(|i| read_stage(r, i))
        .collect();
    // Two stages of one type: name them by position, so the profile tells them apart.
    let names: Vec<String> = stages.iter().map(|s| s.settings().name.clone()).collect();
    for (i, s) in stages.iter_mut().enumerate() {
        let name = &names[i];
        if names.iter().filter(|n| *n == name).count() > 1 {
            s.settings_mut().name = format!("{name}#{}", i + 1);
        }
    }
    stages
}

/// Reads `[[stage]]` number `i` (0-based).
fn read_stage(r: &mut Reader<'_>, i: usize) -> Option<StageSpec> {
    let p = format!("stage.{i}");
    let ty = r.required_string(&format!("{p}.type"));
    let name = r.string(&format!("{p}.name"));
    let workers = r.int(&format!("{p}.workers"), 0).map_or(0, |n| n as usize);
    let queue = r.positive(&format!("{p}.queue")).unwrap_or(DEFAULT_QUEUE);
    let key = read_key(r, &format!("{p}.key"));
    let settings = |ty: &str| StageSettings {
        name: name.clone().unwrap_or_else(|| ty.to_owned()),
        workers,
        queue,
        key: key.clone(),
    };
    match ty.as_deref() {
        Some("xml") => {
            let field = r.required_string(&format!("{p}.field"));
            let record = r.required_string(&format!("{p}.record"));
            let keep = r.string_list(&format!("{p}.keep"));
            let mapping = super::xml_format::read_mapping(r, &p);
            Some(StageSpec::Xml {
                settings: settings("xml"),
                config: XmlStageConfig {
                    field: field?,
                    record: record?,
                    mapping,
                    keep,
                },
            })
        }
        Some(ty @ ("indicators" | "breadth")) => {
            let default_group = if ty == "indicators" { "ticker" } else { "date" };
            let config = GroupStageConfig {
                group: r
                    .string(&format!("{p}.group"))
                    .unwrap_or_else(|| default_group.to_owned()),
                rows: r
                    .string(&format!("{p}.rows"))
                    .unwrap_or_else(|| "rows".to_owned()),
            };
            Some(if ty == "indicators" {
                StageSpec::Indicators {
                    settings: settings(ty),
                    config,
                }
            } else {
                StageSpec::Breadth {
                    settings: settings(ty),
                    config,
                }
            })
        }
        Some(other) => {
            r.unknown_type(&p, other, TYPES);
            None
        }
        None => {
            r.skip_section(&p);
            None
        }
    }
}

/// `stage.N.key`: a field name, or an array of them (joined with `/`); absent: inherited.
fn read_key(r: &mut Reader<'_>, key: &str) -> StageKey {
    let Some(leaf) = r.leaf(key) else {
        return StageKey::Inherit;
    };
    match &leaf.value {
        Val::Str(s) if !s.is_empty() => StageKey::Fields(vec![s.clone()]),
        Val::Array(items)
            if !items.is_empty()
                && items
                    .iter()
                    .all(|v| matches!(v, Val::Str(s) if !s.is_empty())) =>
        {
            StageKey::Fields(
                items
                    .iter()
                    .filter_map(|v| match v {
                        Val::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            )
        }
        _ => {
            r.err(
                key,
                leaf.line,
                "expected a field name or an array of field names, e.g. \"id\" or [\"ticker\", \"date\"]",
            );
            StageKey::Inherit
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::file::JobFile;
    use super::super::load::{validate, LoadOptions};
    use super::*;

    fn check(text: &str) -> Result<super::super::spec::JobConfig, String> {
        let file = JobFile::parse(Path::new("/jobs/p.toml"), text).unwrap();
        validate(&file, &LoadOptions::default()).map_err(|e| e.to_string())
    }

    const SOURCE: &str = "[source]\ntype = \"sql\"\nurl = \"sqlite:raw.db\"\nquery = \"SELECT id, doc FROM raw\"\nkey = \"id\"\n";
    const HANDLER: &str = "\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n";

    #[test]
    fn stages_load_in_order_with_their_settings() {
        let text = format!("{SOURCE}\n[[stage]]\ntype = \"xml\"\nfield = \"doc\"\nrecord = \"order\"\nworkers = 3\nqueue = 50\nkey = \"id\"\nkeep = [\"id\"]\n[stage.columns]\nid = \"@id as integer\"\n[stage.lists.lines]\npath = \"items/item\"\ncolumns.sku = \"@sku\"\n\n[[stage]]\ntype = \"xml\"\nfield = \"x\"\nrecord = \"r\"\ncolumns.a = \"@a\"\n{HANDLER}");
        let job = check(&text).unwrap();
        assert_eq!(job.stages.len(), 2);
        let StageSpec::Xml { settings, config } = &job.stages[0] else {
            panic!("an xml stage: {:?}", job.stages[0]);
        };
        assert_eq!(
            settings,
            &StageSettings {
                name: "xml#1".into(),
                workers: 3,
                queue: 50,
                key: StageKey::Fields(vec!["id".into()]),
            }
        );
        assert_eq!(config.field, "doc");
        assert_eq!(config.keep, vec!["id".to_owned()]);
        assert_eq!(config.mapping.columns.len(), 2);
        let second = job.stages[1].settings();
        assert_eq!(
            (second.name.as_str(), second.workers, second.queue),
            ("xml#2", 0, 1024)
        );
        assert_eq!(second.key, StageKey::Inherit);
    }

    #[test]
    fn stage_errors_name_file_line_and_key() {
        let text = format!("{SOURCE}\n[[stage]]\ntype = \"xml\"\nrecord = \"order\"\nworkers = -1\nkey = 5\n[stage.columns]\nid = \"@id as money\"\n\n[[stage]]\ntype = \"nope\"\nfoo = 1\n\n[[stage]]\ntype = \"xml\"\nfield = \"d\"\nrecord = \"r\"\nbogus = 1\ncolumns.a = \"@a\"\n{HANDLER}");
        let err = check(&text).unwrap_err();
        for want in [
            "/jobs/p.toml:7: `stage.0.field`: missing required key",
            "/jobs/p.toml:10: `stage.0.workers`: must be at least 0, got -1",
            "/jobs/p.toml:11: `stage.0.key`: expected a field name",
            "/jobs/p.toml:13: `stage.0.columns.id`: `money` is not a type",
            "/jobs/p.toml:16: `stage.1.type`: unknown stage.1 type `nope`; expected xml, indicators or breadth",
            "/jobs/p.toml:23: `stage.2.bogus`: unknown key",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
    }

    #[test]
    fn a_single_stage_table_is_refused() {
        let text = format!("{SOURCE}\n[stage]\ntype = \"xml\"\n{HANDLER}");
        let err = check(&text).unwrap_err();
        assert!(
            err.contains(":8: `stage.type`: stages are an array of tables"),
            "{err}"
        );
    }
}
