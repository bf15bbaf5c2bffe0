//! A phased job file: `[[phase]]` blocks, each a source -> stage -> sink pipeline, ordered
//! by `after`. Parsed with serde (unknown keys are errors naming the line), then validated
//! into [`PhasedJob`]: names unique, every `after` names a phase, no cycle; the phases in the
//! order they run.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::{EngineConfig, Priority};
use serde::Deserialize;

use super::stage::StageKind;
use crate::error::Error;
use crate::job::file::interpolate;
use crate::job::spec::raise_concurrency;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    job: JobDoc,
    phase: Vec<PhaseDoc>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JobDoc {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseDoc {
    name: String,
    after: Option<String>,
    source: SourceDoc,
    #[serde(default)]
    stage: Vec<StageDoc>,
    sink: SinkDoc,
    #[serde(default)]
    batch: BatchDoc,
    #[serde(default)]
    dispatch: DispatchDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceDoc {
    #[serde(rename = "type")]
    kind: String,
    url: String,
    query: String,
    group_by: String,
    series: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
enum StageDoc {
    Indicators {
        #[serde(default = "date")]
        date: String,
        #[serde(default = "close")]
        close: String,
        state_table: Option<String>,
    },
    Breadth {},
}

fn date() -> String {
    "date".into()
}
fn close() -> String {
    "close".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkDoc {
    #[serde(rename = "type")]
    kind: String,
    url: String,
    table: String,
    #[serde(default)]
    key: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BatchDoc {
    max_items: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DispatchDoc {
    max_concurrency: Option<usize>,
}

/// A validated phased job.
#[derive(Debug, Clone)]
pub struct PhasedJob {
    /// The job's name (default: the file stem).
    pub name: String,
    /// The job file.
    pub path: PathBuf,
    /// The phases, in the order they run.
    pub phases: Vec<Phase>,
}

/// One phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Its name.
    pub name: String,
    /// The phase it starts after (once that one has committed).
    pub after: Option<String>,
    /// The source database.
    pub source_url: String,
    /// The source query (ordered by `group_by`).
    pub query: String,
    /// The column whose consecutive equal values make one group (one item); with `series`,
    /// the column whose equal values the stage folds into one group, wherever they are.
    pub group_by: String,
    /// The query is ordered by this column, then `group_by`, and the stage folds each row
    /// into its group as the rows stream (`breadth`: rows by ticker, groups by date).
    pub series: Option<String>,
    /// The stage.
    pub stage: StageKind,
    /// The sink database.
    pub sink_url: String,
    /// The sink table.
    pub sink_table: String,
    /// The sink table's unique key (default: the stage's).
    pub sink_key: Vec<String>,
    /// The engine's settings for this phase.
    pub engine: EngineConfig,
    /// This phase's checkpoint.
    pub checkpoint: PathBuf,
    /// This phase's dead letters.
    pub dead_letters: PathBuf,
}

/// Whether `text` is a phased job file (it has a `[[phase]]` block).
pub fn is_phased(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("[[phase]]"))
}

fn config_error(path: &Path, line: usize, key: &str, message: impl Into<String>) -> Error {
    Error::Config {
        file: path.to_owned(),
        line,
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The line of the first occurrence of `needle` in `text` (0 if absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map_or(0, |at| text[..at].matches('\n').count() + 1)
}

/// Reads and validates a phased job file, expanding `${NAME}` and `${NAME:-default}`
/// through `env`.
pub fn load_phased(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<PhasedJob, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_phased(path, &text, env)
}

/// [`load_phased`] over the file's text.
pub fn parse_phased(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PhasedJob, Error> {
    let doc: FileDoc = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        config_error(path, line, "", e.message().to_owned())
    })?;
    let stem = path
        .file_stem()
        .map_or_else(|| "job".to_owned(), |s| s.to_string_lossy().into_owned());
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = doc.job.name.clone().unwrap_or_else(|| stem.clone());
    let mut errors = Vec::new();
    let expand = |s: &str, key: &str, errors: &mut Vec<Error>| {
        interpolate(s, env).unwrap_or_else(|var| {
            errors.push(config_error(
                path,
                line_of(text, s),
                key,
                format!("environment variable `{var}` is not set and has no default"),
            ));
            String::new()
        })
    };
    let names: Vec<&str> = doc.phase.iter().map(|p| p.name.as_str()).collect();
    let mut phases = Vec::new();
    for (i, p) in doc.phase.iter().enumerate() {
        let here = line_of(text, &format!("\"{}\"", p.name));
        if names[..i].contains(&p.name.as_str()) {
            errors.push(config_error(
                path,
                here,
                "phase.name",
                format!("two phases are named `{}`", p.name),
            ));
        }
        if let Some(a) = &p.after {
            if !names.contains(&a.as_str()) {
                errors.push(config_error(
                    path,
                    line_of(text, &format!("after = \"{a}\"")),
                    "phase.after",
                    format!(
                        "phase `{}` runs after `{a}`, but no phase is named `{a}`; the phases are: {}",
                        p.name,
                        names.join(", ")
                    ),
                ));
            }
        }
        if p.source.kind != "sql" {
            errors.push(config_error(
                path,
                here,
                "phase.source.type",
                format!(
                    "unknown source type `{}`; a phase reads `sql`",
                    p.source.kind
                ),
            ));
        }
        if p.sink.kind != "sql" {
            errors.push(config_error(
                path,
                here,
                "phase.sink.type",
                format!("unknown sink type `{}`; a phase writes `sql`", p.sink.kind),
            ));
        }
        let stage = match p.stage.as_slice() {
            [StageDoc::Indicators {
                date,
                close,
                state_table,
            }] => StageKind::Indicators {
                date: date.clone(),
                close: close.clone(),
                state_table: state_table.clone(),
            },
            [StageDoc::Breadth {}] => StageKind::Breadth,
            other => {
                errors.push(config_error(
                    path,
                    here,
                    "phase.stage",
                    format!(
                        "phase `{}` has {} stages; it needs one: `indicators` or `breadth`",
                        p.name,
                        other.len()
                    ),
                ));
                StageKind::Breadth
            }
        };
        if p.source.series.is_some() && !stage.folds() {
            errors.push(config_error(
                path,
                line_of(text, "series"),
                "phase.source.series",
                format!(
                    "phase `{}`: only a `breadth` stage folds a series-ordered source",
                    p.name
                ),
            ));
        }
        let mut engine = EngineConfig::standard();
        engine.name = format!("{name}/{}", p.name);
        let cap = p.batch.max_items.unwrap_or(256).max(1);
        engine.flush = engine
            .flush
            .clone()
            .max_items(NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN))
            .max_wait(Priority::Medium, Duration::from_millis(50));
        if let ferry_core::BatchSizing::Adaptive(c) = &mut engine.sizing {
            c.max = cap;
            c.initial = c.initial.min(cap);
            c.min = c.min.min(cap);
        }
        let cores = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        raise_concurrency(&mut engine, p.dispatch.max_concurrency.unwrap_or(cores));
        phases.push(Phase {
            name: p.name.clone(),
            after: p.after.clone(),
            source_url: expand(&p.source.url, "phase.source.url", &mut errors),
            query: expand(&p.source.query, "phase.source.query", &mut errors),
            group_by: p.source.group_by.clone(),
            series: p.source.series.clone(),
            stage,
            sink_url: expand(&p.sink.url, "phase.sink.url", &mut errors),
            sink_table: p.sink.table.clone(),
            sink_key: p.sink.key.clone(),
            engine,
            checkpoint: dir.join(format!("{stem}.{}.checkpoint.db", p.name)),
            dead_letters: dir.join(format!("{stem}.{}.dead.jsonl", p.name)),
        });
    }
    if errors.is_empty() {
        match order(&phases) {
            Ok(ordered) => phases = ordered,
            Err(cycle) => errors.push(config_error(
                path,
                0,
                "phase.after",
                format!("the phases' `after` make a cycle: {cycle}"),
            )),
        }
    }
    match errors.len() {
        0 => Ok(PhasedJob {
            name,
            path: path.to_owned(),
            phases,
        }),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

/// The phases in run order: each after the one it names, otherwise in file order.
fn order(phases: &[Phase]) -> Result<Vec<Phase>, String> {
    let mut out: Vec<Phase> = Vec::with_capacity(phases.len());
    let mut left: Vec<&Phase> = phases.iter().collect();
    while !left.is_empty() {
        let ready = left.iter().position(|p| {
            p.after
                .as_ref()
                .is_none_or(|a| out.iter().any(|d| &d.name == a))
        });
        match ready {
            Some(i) => out.push(left.remove(i).clone()),
            None => {
                return Err(left
                    .iter()
                    .map(|p| format!("`{}` after `{}`", p.name, p.after.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", "))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = r#"
[[phase]]
name = "breadth"
after = "indicators"
source = { type = "sql", url = "${DB:-sqlite:m.db}", query = "SELECT 1", group_by = "date" }
stage = [{ type = "breadth" }]
sink = { type = "sql", url = "${DB:-sqlite:m.db}", table = "breadth" }

[[phase]]
name = "indicators"
source = { type = "sql", url = "${DB:-sqlite:m.db}", query = "SELECT 1", group_by = "ticker" }
stage = [{ type = "indicators", state_table = "st" }]
sink = { type = "sql", url = "${DB:-sqlite:m.db}", table = "indicators" }
"#;

    #[test]
    fn phases_run_after_the_phase_they_name() {
        let job = parse_phased(Path::new("/j/market.toml"), JOB, &|_| None).unwrap();
        let names: Vec<&str> = job.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["indicators", "breadth"]);
        assert_eq!(job.phases[0].source_url, "sqlite:m.db");
        assert_eq!(
            job.phases[1].checkpoint,
            Path::new("/j/market.breadth.checkpoint.db")
        );
        assert!(is_phased(JOB));
    }

    #[test]
    fn an_unknown_after_is_named_with_the_phases() {
        let text = JOB.replace("after = \"indicators\"", "after = \"indicatorz\"");
        let e = parse_phased(Path::new("/j/market.toml"), &text, &|_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/j/market.toml:4: `phase.after`: phase `breadth` runs after `indicatorz`, but no phase is named `indicatorz`; the phases are: breadth, indicators"
        );
    }

    #[test]
    fn unknown_keys_and_cycles_are_errors() {
        let text = JOB.replace("group_by = \"date\"", "group_by = \"date\", grop = 1");
        let e = parse_phased(Path::new("/j/m.toml"), &text, &|_| None).unwrap_err();
        assert!(e.to_string().contains("unknown field `grop`"), "{e}");
        let text = JOB.replace(
            "name = \"indicators\"\n",
            "name = \"indicators\"\nafter = \"breadth\"\n",
        );
        let e = parse_phased(Path::new("/j/m.toml"), &text, &|_| None).unwrap_err();
        assert!(e.to_string().contains("make a cycle"), "{e}");
    }

    #[test]
    fn a_series_is_read_for_a_folding_stage_only() {
        let text = JOB.replace(
            "group_by = \"date\"",
            "group_by = \"date\", series = \"ticker\"",
        );
        let job = parse_phased(Path::new("/j/m.toml"), &text, &|_| None).unwrap();
        assert_eq!(job.phases[1].series.as_deref(), Some("ticker"));
        assert_eq!(job.phases[0].series, None);
        let text = JOB.replace(
            "group_by = \"ticker\"",
            "group_by = \"ticker\", series = \"date\"",
        );
        let e = parse_phased(Path::new("/j/m.toml"), &text, &|_| None).unwrap_err();
        assert!(
            e.to_string().contains(
                "phase `indicators`: only a `breadth` stage folds a series-ordered source"
            ),
            "{e}"
        );
    }
}
