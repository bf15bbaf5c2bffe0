//! The job service's handlers from its configuration file: `ferry serve --config ferry.toml`
//! and `ferry worker --config ferry.toml` read every `[handler.NAME]` table, each a job
//! file's `[handler]` (any kind: graphql, http, exec, sql, jsonl) with the job file's engine
//! sections beneath it (`[handler.NAME.batch]`, `.dispatch`, `.retry`, `.vars`) and an
//! optional `preset`. The tables are read by the job file's own code (`ferry_format`'s
//! `read_handler` and `read_engine`, through a reader scoped to the table), so a key means
//! the same in both files and is checked the same way (file, line, key; unknown keys with
//! suggestions).
//!
//! Other top-level tables of the file are the service's own settings, not handlers: they
//! are left alone here.

use std::path::Path;

use ferry_core::{EngineConfig, Priority};

use super::ferry_format::{fit_engine_to_handler, read_engine, read_handler, read_vars};
use super::file::JobFile;
use super::load::EnvLookup;
use super::reader::Reader;
use super::spec::HandlerSpec;
use crate::error::Error;

/// One `[handler.NAME]` table, validated.
#[derive(Debug, Clone)]
pub struct ServiceHandler {
    /// The name jobs give (`"handler": "NAME"` when submitted).
    pub name: String,
    /// What is done with each batch.
    pub handler: HandlerSpec,
    /// The engine's settings: the caller's base, or `preset`, with the table's `batch`,
    /// `dispatch` and `retry` keys over it. Its `name` is the handler's.
    pub engine: EngineConfig,
}

/// Reads every `[handler.NAME]` table of `path` (none: an empty list). `base` is the engine
/// the service runs handlers with unless a table says otherwise; `env` expands `${NAME}`
/// (default: the process's environment). Every problem in every table is reported at once.
pub fn load_service_handlers(
    path: &Path,
    base: &EngineConfig,
    env: Option<EnvLookup<'_>>,
) -> Result<Vec<ServiceHandler>, Error> {
    let file = JobFile::load(path)?;
    service_handlers(&file, base, env)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads an already-parsed file's `[handler.NAME]` tables (see [`load_service_handlers`]).
pub(crate) fn service_handlers(
    file: &JobFile,
    base: &EngineConfig,
    env: Option<EnvLookup<'_>>,
) -> Result<Vec<ServiceHandler>, Error> {
    let env = env.unwrap_or(&process_env);
    let mut errors = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for leaf in &file.leaves {
        let mut parts = leaf.key.splitn(3, '.');
        if parts.next() != Some("handler") {
            continue;
        }
        match (parts.next(), parts.next()) {
            (Some(name), Some(_)) if valid_name(name) => {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            (Some(name), Some(_)) => errors.push(config_error(
                file,
                leaf.line,
                &format!("handler.{name}"),
                "a handler's name is letters, digits, `_` and `-`",
            )),
            _ => errors.push(config_error(
                file,
                leaf.line,
                &leaf.key,
                "expected a [handler.NAME] table (e.g. [handler.enrich] with type = \"exec\")",
            )),
        }
    }
    let mut handlers = Vec::with_capacity(names.len());
    for name in names {
        let prefix = format!("handler.{name}.");
        let table = JobFile {
            path: file.path.clone(),
            leaves: file
                .leaves
                .iter()
                .filter(|l| l.key.starts_with(&prefix))
                .cloned()
                .collect(),
        };
        let mut r = Reader::scoped(&table, env, &name);
        let handler = read_table(&mut r, &name, base);
        r.unknown_keys();
        errors.append(&mut r.errors);
        handlers.extend(handler);
    }
    errors.sort_by_key(|e| match e {
        Error::Config { line, .. } => *line,
        _ => 0,
    });
    match errors.len() {
        0 => Ok(handlers),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Many(errors)),
    }
}

/// Reads one table through its scoped reader.
fn read_table(r: &mut Reader<'_>, name: &str, base: &EngineConfig) -> Option<ServiceHandler> {
    let mut engine = base.clone();
    if let Some(preset) = r.string("handler.preset") {
        match EngineConfig::preset(&preset) {
            // The preset's limits and controllers, the service's waits: claims already
            // arrive in batches, so a longer wait would only hold small jobs back.
            Some(mut c) => {
                for p in Priority::DESCENDING {
                    c.flush = c.flush.max_wait(p, base.flush.wait_for(p));
                }
                engine = c;
            }
            None => {
                let line = r.line_of("handler.preset");
                r.err(
                    "handler.preset",
                    line,
                    format!(
                        "unknown preset `{preset}`; expected standard, high_throughput or low_memory"
                    ),
                );
            }
        }
    }
    engine.name = name.to_owned();
    read_engine(r, &mut engine);
    let vars = read_vars(r);
    let handler = read_handler(r, vars)?;
    fit_engine_to_handler(r, &handler, &mut engine);
    if let Err(e) = engine.clone().validate() {
        let line = r.section_line("handler");
        r.err("handler", line, e.to_string());
        return None;
    }
    Some(ServiceHandler {
        name: name.to_owned(),
        handler,
        engine,
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn config_error(file: &JobFile, line: usize, key: &str, message: &str) -> Error {
    Error::Config {
        file: file.path.clone(),
        line,
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn read(text: &str) -> Result<Vec<ServiceHandler>, Error> {
        let file = JobFile::parse(Path::new("/etc/ferry.toml"), text).unwrap();
        let env = |n: &str| (n == "TOKEN").then(|| "t0k".to_owned());
        let mut base = EngineConfig::standard();
        base.flush = base
            .flush
            .max_wait(Priority::High, Duration::from_millis(1))
            .max_wait(Priority::Medium, Duration::from_millis(2))
            .max_wait(Priority::Low, Duration::from_millis(2));
        service_handlers(&file, &base, Some(&env))
    }

    #[test]
    fn tables_become_named_handlers_with_their_engine_settings() {
        let text = r#"
listen = "127.0.0.1:8000"   # a service setting: not a handler's

[store]
url = "postgres://x"

[handler.enrich]
type = "exec"
program = "python3"
args = ["enrich.py"]
workers = 3
[handler.enrich.env]
MODEL = "small"
[handler.enrich.batch]
max_items = 50
[handler.enrich.dispatch]
timeout = "4s"
max_concurrency = 3
[handler.enrich.retry]
max_attempts = 7

[handler.notify]
type = "http"
url = "http://127.0.0.1:9/hook"
body = "{{ items | json }}"
preset = "low_memory"
[handler.notify.headers]
Authorization = "Bearer ${TOKEN}"
"#;
        let handlers = read(text).unwrap();
        let names: Vec<&str> = handlers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["enrich", "notify"]);
        let enrich = &handlers[0];
        let HandlerSpec::Exec(e) = &enrich.handler else {
            panic!("{:?}", enrich.handler)
        };
        assert_eq!(
            (e.program.as_str(), e.args.clone(), e.workers),
            ("python3", vec!["enrich.py".to_owned()], 3)
        );
        assert_eq!(e.env, vec![("MODEL".to_owned(), "small".to_owned())]);
        assert_eq!(enrich.engine.name, "enrich");
        assert_eq!(enrich.engine.max_items(), 50);
        assert_eq!(enrich.engine.dispatch.timeout, Duration::from_secs(4));
        assert_eq!(enrich.engine.dispatch.concurrency.cap(), 3);
        // Without a concurrency key, an exec handler's calls are capped at its children.
        let text = "[handler.e]\ntype = \"exec\"\nprogram = \"python3\"\nworkers = 2\n";
        assert_eq!(read(text).unwrap()[0].engine.dispatch.concurrency.cap(), 2);
        assert_eq!(enrich.engine.retry.max_attempts(), 7);
        // The base's waits stay unless the table sets them.
        assert_eq!(
            enrich.engine.flush.wait_for(Priority::Medium),
            Duration::from_millis(2)
        );
        let notify = &handlers[1];
        let HandlerSpec::Http(h) = &notify.handler else {
            panic!("{:?}", notify.handler)
        };
        assert_eq!(h.headers[0].1, "Bearer t0k");
        // low_memory: at most 50 items and 4 calls, with the service's waits.
        assert_eq!(notify.engine.max_items(), 50);
        assert_eq!(notify.engine.dispatch.concurrency.cap(), 4);
        assert_eq!(
            notify.engine.flush.wait_for(Priority::Medium),
            Duration::from_millis(2)
        );
    }

    #[test]
    fn a_file_without_handler_tables_has_no_handlers() {
        assert!(read("listen = \"127.0.0.1:1\"\n[store]\nurl = \"x\"\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn every_problem_names_file_line_and_the_full_key() {
        let text = "[handler.a]\ntype = \"exec\"\nworkrs = 2\n[handler.a.dispatch]\ntimeout = \"soon\"\n\n[handler.b]\ntype = \"htp\"\n[handler.c]\ntype = \"http\"\nurl = \"${NOPE}\"\n";
        let err = read(text).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 5, "{err}");
        assert_eq!(
            lines[0],
            "/etc/ferry.toml:1: `handler.a.program`: missing required key"
        );
        assert!(
            lines[1].starts_with(
                "/etc/ferry.toml:3: `handler.a.workrs`: unknown key; expected one of: handler.a.preset, handler.a.type,"
            ) && lines[1].contains("handler.a.workers"),
            "{err}"
        );
        assert!(
            lines[2].starts_with(
                "/etc/ferry.toml:5: `handler.a.dispatch.timeout`: expected a duration"
            ),
            "{err}"
        );
        assert!(
            lines[3].starts_with("/etc/ferry.toml:8: `handler.b.type`: unknown handler type `htp`"),
            "{err}"
        );
        assert_eq!(
            lines[4],
            "/etc/ferry.toml:11: `handler.c.url`: environment variable `NOPE` is not set"
        );
    }

    #[test]
    fn a_job_file_style_handler_table_is_explained() {
        let err = read("[handler]\ntype = \"exec\"\nprogram = \"python3\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/ferry.toml:2: `handler.type`: expected a [handler.NAME] table"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_engine_section_key_suggests_that_sections_keys() {
        let err = read(
            "[handler.a]\ntype = \"jsonl\"\npath = \"o.jsonl\"\n[handler.a.batch]\nmax_itemz = 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/etc/ferry.toml:5: `handler.a.batch.max_itemz`: unknown key; expected one of: handler.a.batch.max_items,"),
            "{err}"
        );
    }
}
