//! Job configuration: validating a [`JobFile`](super::file::JobFile)'s leaves into the typed
//! [`JobConfig`] the runner uses, reporting every problem at once with file, line and key.
//!
//! Two formats are accepted. Ferry's own (`[source]`, `[handler]`, `[batch]`, `[dispatch]`,
//! `[retry]`, `[dead_letters]`, `[checkpoint]`, `[vars]`, `[job]`; see `docs/job-file.md`),
//! and seed 000's monday.com board-update file (`[metadata] board_id`, `[query_config] query`,
//! `[column_mapping]`, `[validation]`), detected by its `[query_config]` table and mapped onto
//! a SQL source and a GraphQL handler. Limits in a job file are caps: the adaptive
//! controllers work under them unless a fixed setting is asked for.

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::adaptive::{BatchSizeConfig, ConcurrencyConfig};
use ferry_core::{
    BatchSizing, Concurrency, EngineConfig, FlushPolicy, Priority, RetryPolicy, SplitStrategy,
};
use serde_json::{Map, Value};

use super::file::{interpolate, JobFile, Leaf, Val};
use crate::error::Error;
use crate::graphql::GraphqlConfig;
use crate::source::KeyBy;

/// Where items come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// A CSV file with a header row.
    Csv {
        /// The file (relative paths are relative to the job file).
        path: PathBuf,
        /// How items are keyed.
        key: KeyBy,
    },
    /// A JSON Lines file.
    Jsonl {
        /// The file.
        path: PathBuf,
        /// How items are keyed.
        key: KeyBy,
    },
    /// A SQL query (SQLite file or PostgreSQL URL), streamed.
    Sql {
        /// `sqlite:path`, a `.db` path, or `postgres://...`.
        url: String,
        /// The query.
        query: String,
        /// How items are keyed.
        key: KeyBy,
    },
}

/// What is done with each batch.
#[derive(Debug, Clone)]
pub enum HandlerSpec {
    /// GraphQL aliased mutations.
    Graphql(GraphqlConfig),
    /// One templated HTTP request per batch.
    Http(crate::http::HttpConfig),
    /// A child process speaking JSON lines (a handler in any language).
    Exec(crate::exec::ExecConfig),
    /// Insert or upsert into a SQL table.
    Sql(crate::sink::SqlSinkConfig),
    /// Append each item (and its key) to a JSON Lines file.
    Jsonl {
        /// The output file.
        path: PathBuf,
    },
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The job's name (default: the file stem).
    pub name: String,
    /// The job file.
    pub path: PathBuf,
    /// The source.
    pub source: SourceSpec,
    /// The handler.
    pub handler: HandlerSpec,
    /// The engine's settings.
    pub engine: EngineConfig,
    /// The dead-letter file.
    pub dead_letters: PathBuf,
    /// The checkpoint database (`None`: disabled).
    pub checkpoint: Option<PathBuf>,
    /// Whether the file was in seed 000's format.
    pub seed_format: bool,
}

/// An environment lookup: a variable's value, if set.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Values that come from the command line or the environment rather than the file.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// `--set key=value` overrides.
    pub sets: Vec<String>,
    /// `--max-concurrent N`: raises (or sets) the concurrency cap.
    pub max_concurrent: Option<usize>,
    /// A dry run does not need secrets: a missing token is not an error.
    pub dry_run: bool,
    /// Environment lookup (tests pass a closure; the CLI passes `std::env::var`).
    pub env: Option<EnvLookup<'a>>,
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads and validates a job file.
pub fn load(path: &Path, opts: &LoadOptions<'_>) -> Result<JobConfig, Error> {
    let mut file = JobFile::load(path)?;
    file.apply_sets(&opts.sets)?;
    validate(&file, opts)
}

/// Validates an already-parsed job file (used by `load` and by tests).
pub(crate) fn validate(file: &JobFile, opts: &LoadOptions<'_>) -> Result<JobConfig, Error> {
    let env = opts.env.unwrap_or(&process_env);
    let mut r = Reader {
        file,
        used: vec![false; file.leaves.len()],
        errors: Vec::new(),
        env,
        dry_run: opts.dry_run,
    };
    let seed = file.has_section("query_config");
    let job = if seed {
        seed_job(&mut r)
    } else {
        ferry_job(&mut r)
    };
    let mut job = job.map(|mut j| {
        if let Some(n) = opts.max_concurrent {
            raise_concurrency(&mut j.engine, n);
        }
        j
    });
    r.unknown_keys(if seed { SEED_KEYS } else { FERRY_KEYS });
    if let Some(j) = &mut job {
        if let Err(e) = j.engine.clone().validate() {
            r.errors.push(Error::Config {
                file: file.path.clone(),
                line: 0,
                key: String::new(),
                message: e.to_string(),
            });
        }
    }
    r.errors.sort_by_key(|e| match e {
        Error::Config { line, .. } => *line,
        _ => 0,
    });
    match (job, r.errors.len()) {
        (Some(j), 0) => Ok(j),
        (_, 1) => Err(r.errors.remove(0)),
        (_, _) => Err(Error::Many(r.errors)),
    }
}

fn raise_concurrency(engine: &mut EngineConfig, n: usize) {
    match &mut engine.dispatch.concurrency {
        Concurrency::Adaptive(c) => {
            c.max = n.max(1);
            c.initial = c.initial.min(c.max);
            c.min = c.min.min(c.max);
        }
        Concurrency::Fixed(f) => *f = NonZeroUsize::new(n).unwrap_or(*f),
    }
}

/// Known keys per format: `section.key`, or `section.*` for free-form tables.
const FERRY_KEYS: &[&str] = &[
    "job.name",
    "job.preset",
    "source.type",
    "source.path",
    "source.url",
    "source.query",
    "source.key",
    "handler.type",
    "handler.url",
    "handler.mutation",
    "handler.path",
    "handler.headers.*",
    "handler.columns.*",
    "vars.*",
    "batch.max_items",
    "batch.min_items",
    "batch.initial_items",
    "batch.adaptive",
    "batch.target_latency",
    "batch.max_wait",
    "batch.max_wait_high",
    "batch.max_wait_urgent",
    "batch.max_bytes",
    "dispatch.concurrency",
    "dispatch.max_concurrency",
    "dispatch.requests_per_second",
    "dispatch.items_per_second",
    "dispatch.timeout",
    "dispatch.split",
    "dispatch.pause",
    "retry.max_attempts",
    "retry.backoff_base",
    "retry.backoff_max",
    "retry.split_after",
    "dead_letters.path",
    "checkpoint.path",
    "checkpoint.enabled",
];

const SEED_KEYS: &[&str] = &[
    "metadata.*",
    "query_config.query",
    "query_config.item_id_column",
    "column_mapping.*",
    "validation.max_batch_size",
    "validation.max_concurrent_batches",
    "validation.request_timeout_seconds",
];

/// The monday.com mutation seed 000 sends for each item.
const MONDAY_MUTATION: &str = "change_multiple_column_values(item_id: {{ item[item_id_column] }}, board_id: {{ board_id }}, column_values: {{ columns | graphql_string }}) { id }";

struct Reader<'a> {
    file: &'a JobFile,
    used: Vec<bool>,
    errors: Vec<Error>,
    env: &'a dyn Fn(&str) -> Option<String>,
    dry_run: bool,
}

impl Reader<'_> {
    fn err(&mut self, key: &str, line: usize, message: impl Into<String>) {
        self.errors.push(Error::Config {
            file: self.file.path.clone(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The line of a section's first key, for errors about missing keys in it.
    fn section_line(&self, section: &str) -> usize {
        let prefix = format!("{section}.");
        self.file
            .leaves
            .iter()
            .filter(|l| l.key.starts_with(&prefix))
            .map(|l| l.line.saturating_sub(1).max(1))
            .min()
            .unwrap_or(0)
    }

    fn leaf(&mut self, key: &str) -> Option<Leaf> {
        let i = self.file.leaves.iter().position(|l| l.key == key)?;
        self.used[i] = true;
        Some(self.file.leaves[i].clone())
    }

    fn expand(&mut self, key: &str, line: usize, s: &str) -> Option<String> {
        match interpolate(s, self.env) {
            Ok(v) => Some(v),
            Err(var) => {
                self.err(
                    key,
                    line,
                    format!("environment variable `{var}` is not set"),
                );
                None
            }
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        let leaf = self.leaf(key)?;
        match &leaf.value {
            Val::Str(s) => self.expand(key, leaf.line, s),
            other => {
                let t = other.type_name();
                self.err(key, leaf.line, format!("expected a string, found {t}"));
                None
            }
        }
    }

    fn required_string(&mut self, key: &str) -> Option<String> {
        if self.file.leaves.iter().any(|l| l.key == key) {
            return self.string(key);
        }
        let section = key.split('.').next().unwrap_or(key);
        let line = self.section_line(section);
        self.err(key, line, "missing required key");
        None
    }

    fn int(&mut self, key: &str, min: i64) -> Option<i64> {
        let leaf = self.leaf(key)?;
        match leaf.value {
            Val::Int(i) if i >= min => Some(i),
            Val::Int(i) => {
                self.err(key, leaf.line, format!("must be at least {min}, got {i}"));
                None
            }
            ref other => {
                let t = other.type_name();
                self.err(key, leaf.line, format!("expected an integer, found {t}"));
                None
            }
        }
    }

    fn positive(&mut self, key: &str) -> Option<usize> {
        self.int(key, 1).map(|i| i as usize)
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        let leaf = self.leaf(key)?;
        match leaf.value {
            Val::Bool(b) => Some(b),
            ref other => {
                let t = other.type_name();
                self.err(key, leaf.line, format!("expected true or false, found {t}"));
                None
            }
        }
    }

    /// A duration: `"250ms"`, `"2s"`, `"1m 30s"`, or a number of seconds.
    fn duration(&mut self, key: &str) -> Option<Duration> {
        let leaf = self.leaf(key)?;
        let parsed = match &leaf.value {
            Val::Int(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
            Val::Float(f) if *f >= 0.0 && f.is_finite() => Ok(Duration::from_secs_f64(*f)),
            Val::Str(s) => humantime::parse_duration(s)
                .map_err(|e| format!("expected a duration like \"250ms\" or \"2s\": {e}")),
            other => Err(format!(
                "expected a duration like \"250ms\" or \"2s\", found {}",
                other.type_name()
            )),
        };
        match parsed {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(key, leaf.line, m);
                None
            }
        }
    }

    /// Every leaf under `prefix.`, as (sub-key, leaf), in document order.
    fn table(&mut self, prefix: &str) -> Vec<(String, Leaf)> {
        let p = format!("{prefix}.");
        let mut out = Vec::new();
        for (i, l) in self.file.leaves.iter().enumerate() {
            if let Some(sub) = l.key.strip_prefix(&p) {
                self.used[i] = true;
                out.push((sub.to_owned(), l.clone()));
            }
        }
        out
    }

    fn string_table(&mut self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (sub, leaf) in self.table(prefix) {
            let key = format!("{prefix}.{sub}");
            match &leaf.value {
                Val::Str(s) => {
                    if let Some(v) = self.expand(&key, leaf.line, s) {
                        out.push((sub, v));
                    }
                }
                other => {
                    let t = other.type_name();
                    self.err(&key, leaf.line, format!("expected a string, found {t}"));
                }
            }
        }
        out
    }

    fn string_list(&mut self, key: &str) -> Vec<String> {
        let Some(leaf) = self.leaf(key) else {
            return Vec::new();
        };
        match &leaf.value {
            Val::Array(items) if items.iter().all(|v| matches!(v, Val::Str(_))) => items
                .iter()
                .filter_map(|v| match v {
                    Val::Str(s) => self.expand(key, leaf.line, s),
                    _ => None,
                })
                .collect(),
            other => {
                let t = other.type_name();
                self.err(
                    key,
                    leaf.line,
                    format!("expected an array of strings, found {t}"),
                );
                Vec::new()
            }
        }
    }

    fn path(&mut self, key: &str) -> Option<PathBuf> {
        self.string(key).map(|p| self.relative(&p))
    }

    fn relative(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.file.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn unknown_keys(&mut self, known: &[&str]) {
        for (i, leaf) in self.file.leaves.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let section = leaf.key.split('.').next().unwrap_or("");
            let wildcard = known.iter().any(|k| {
                k.strip_suffix(".*")
                    .is_some_and(|p| leaf.key.starts_with(&format!("{p}.")))
            });
            if wildcard || known.contains(&leaf.key.as_str()) {
                continue;
            }
            let siblings: Vec<&str> = known
                .iter()
                .filter(|k| k.starts_with(&format!("{section}.")))
                .copied()
                .collect();
            let message = if siblings.is_empty() {
                let sections: Vec<&str> = {
                    let mut s: Vec<&str> =
                        known.iter().filter_map(|k| k.split('.').next()).collect();
                    s.dedup();
                    s
                };
                format!("unknown key; known sections: {}", sections.join(", "))
            } else {
                format!("unknown key; expected one of: {}", siblings.join(", "))
            };
            self.errors.push(Error::Config {
                file: self.file.path.clone(),
                line: leaf.line,
                key: leaf.key.clone(),
                message,
            });
        }
    }

    fn key_by(&mut self, key: &str) -> KeyBy {
        self.string(key).map_or(KeyBy::RowNumber, KeyBy::Column)
    }

    fn stem(&self) -> String {
        self.file
            .path
            .file_stem()
            .map_or_else(|| "job".to_owned(), |s| s.to_string_lossy().into_owned())
    }

    fn beside_job(&self, suffix: &str) -> PathBuf {
        self.file
            .path
            .with_file_name(format!("{}.{suffix}", self.stem()))
    }
}

fn ferry_job(r: &mut Reader<'_>) -> Option<JobConfig> {
    let name = r.string("job.name").unwrap_or_else(|| r.stem());
    let preset = r.string("job.preset");
    let mut engine = match preset.as_deref() {
        None => EngineConfig::standard(),
        Some(p) => {
            match EngineConfig::preset(p) {
                Some(c) => c,
                None => {
                    let line = r
                        .file
                        .leaves
                        .iter()
                        .find(|l| l.key == "job.preset")
                        .map_or(0, |l| l.line);
                    r.err("job.preset", line, format!("unknown preset `{p}`; expected standard, high_throughput or low_memory"));
                    EngineConfig::standard()
                }
            }
        }
    };
    engine.name = name.clone();

    let source = match r.required_string("source.type").as_deref() {
        Some("csv") => r.required_string("source.path").map(|p| SourceSpec::Csv {
            path: r.relative(&p),
            key: r.key_by("source.key"),
        }),
        Some("jsonl") => r.required_string("source.path").map(|p| SourceSpec::Jsonl {
            path: r.relative(&p),
            key: r.key_by("source.key"),
        }),
        Some("sql") => {
            let url = r.required_string("source.url");
            let query = r.required_string("source.query");
            let key = r.key_by("source.key");
            url.zip(query)
                .map(|(url, query)| SourceSpec::Sql { url, query, key })
        }
        Some(other) => {
            let line = r
                .file
                .leaves
                .iter()
                .find(|l| l.key == "source.type")
                .map_or(0, |l| l.line);
            r.err(
                "source.type",
                line,
                format!("unknown source type `{other}`; expected csv, jsonl or sql"),
            );
            None
        }
        None => None,
    };

    let vars: Map<String, Value> = r
        .table("vars")
        .into_iter()
        .map(|(k, l)| (k, l.value.to_json()))
        .collect();
    let handler = match r.required_string("handler.type").as_deref() {
        Some("graphql") => {
            let url = r.required_string("handler.url");
            let mutation = r.required_string("handler.mutation");
            let headers = r.string_table("handler.headers");
            let columns = r.string_table("handler.columns");
            url.zip(mutation).map(|(url, mutation)| {
                HandlerSpec::Graphql(GraphqlConfig {
                    url,
                    headers,
                    mutation,
                    columns,
                    vars,
                })
            })
        }
        Some("http") => {
            let url = r.required_string("handler.url");
            let method = r
                .string("handler.method")
                .unwrap_or_else(|| "POST".to_owned());
            let body = r.string("handler.body").unwrap_or_default();
            let headers = r.string_table("handler.headers");
            url.map(|url| {
                HandlerSpec::Http(crate::http::HttpConfig {
                    method,
                    url,
                    headers,
                    body,
                    vars,
                })
            })
        }
        Some("sql") => {
            let url = r.required_string("handler.url");
            let table = r.required_string("handler.table");
            let columns = r.string_list("handler.columns_list");
            if columns.is_empty() {
                let line = r.section_line("handler");
                r.err(
                    "handler.columns_list",
                    line,
                    "the SQL sink needs the payload fields to write, e.g. [\"id\", \"name\"]",
                );
            }
            let key = r.string("handler.key");
            url.zip(table).map(|(url, table)| {
                HandlerSpec::Sql(crate::sink::SqlSinkConfig {
                    url,
                    table,
                    columns,
                    key,
                })
            })
        }
        Some("exec") => {
            let program = r.required_string("handler.program");
            let args = r.string_list("handler.args");
            let env = r.string_table("handler.env");
            let workers = r.positive("handler.workers").unwrap_or(1);
            program.map(|program| {
                HandlerSpec::Exec(crate::exec::ExecConfig {
                    program,
                    args,
                    env,
                    workers,
                })
            })
        }
        Some("jsonl") => r
            .required_string("handler.path")
            .map(|p| HandlerSpec::Jsonl {
                path: r.relative(&p),
            }),
        Some(other) => {
            let line = r
                .file
                .leaves
                .iter()
                .find(|l| l.key == "handler.type")
                .map_or(0, |l| l.line);
            r.err(
                "handler.type",
                line,
                format!(
                    "unknown handler type `{other}`; expected graphql, http, exec, sql or jsonl"
                ),
            );
            None
        }
        None => None,
    };

    read_batch(r, &mut engine);
    read_dispatch(r, &mut engine);
    read_retry(r, &mut engine);
    let dead_letters = r
        .path("dead_letters.path")
        .unwrap_or_else(|| r.beside_job("dead.jsonl"));
    let checkpoint_on = r.boolean("checkpoint.enabled").unwrap_or(true);
    let checkpoint_path = r
        .path("checkpoint.path")
        .unwrap_or_else(|| r.beside_job("checkpoint.db"));
    Some(JobConfig {
        name,
        path: r.file.path.clone(),
        source: source?,
        handler: handler?,
        engine,
        dead_letters,
        checkpoint: checkpoint_on.then_some(checkpoint_path),
        seed_format: false,
    })
}

fn read_batch(r: &mut Reader<'_>, engine: &mut EngineConfig) {
    let mut flush: FlushPolicy = engine.flush.clone();
    if let Some(n) = r.positive("batch.max_items").and_then(NonZeroUsize::new) {
        flush = flush.max_items(n);
    }
    if let Some(n) = r.positive("batch.max_bytes").and_then(NonZeroUsize::new) {
        flush = flush.max_bytes(n);
    }
    for (key, p) in [
        ("batch.max_wait", Priority::Normal),
        ("batch.max_wait_high", Priority::High),
        ("batch.max_wait_urgent", Priority::Urgent),
    ] {
        if let Some(d) = r.duration(key) {
            flush = flush.max_wait(p, d);
        }
    }
    engine.flush = flush;
    let adaptive = r.boolean("batch.adaptive").unwrap_or(true);
    let min = r.positive("batch.min_items");
    let initial = r.positive("batch.initial_items");
    let target = r.duration("batch.target_latency");
    engine.sizing = if adaptive {
        let mut c = match &engine.sizing {
            BatchSizing::Adaptive(c) => c.clone(),
            BatchSizing::Fixed => BatchSizeConfig::default(),
        };
        c.max = engine.flush.items_cap();
        if let Some(m) = min {
            c.min = m;
        }
        c.initial = initial.unwrap_or(c.initial).max(c.min);
        if let Some(t) = target {
            c.target_latency = t;
        }
        BatchSizing::Adaptive(c)
    } else {
        BatchSizing::Fixed
    };
}

fn read_dispatch(r: &mut Reader<'_>, engine: &mut EngineConfig) {
    let cap = r.positive("dispatch.max_concurrency");
    let line = r
        .file
        .leaves
        .iter()
        .find(|l| l.key == "dispatch.concurrency")
        .map(|l| (l.line, l.value.clone()));
    match r.leaf("dispatch.concurrency").map(|l| l.value) {
        Some(Val::Int(n)) if n >= 1 => {
            engine.dispatch.concurrency =
                Concurrency::Fixed(NonZeroUsize::new(n as usize).unwrap_or(NonZeroUsize::MIN))
        }
        Some(Val::Str(s)) if s == "adaptive" => {
            engine.dispatch.concurrency = Concurrency::Adaptive(ConcurrencyConfig::default());
        }
        Some(_) => {
            let l = line.map_or(0, |(l, _)| l);
            r.err(
                "dispatch.concurrency",
                l,
                "expected \"adaptive\" or a positive integer (a fixed limit)",
            );
        }
        None => {}
    }
    if let Some(cap) = cap {
        raise_concurrency(engine, cap);
    }
    let rps = r.positive("dispatch.requests_per_second");
    let ips = r.positive("dispatch.items_per_second");
    engine.dispatch.rate.requests_per_sec =
        rps.and_then(|n| NonZeroU32::new(n.min(u32::MAX as usize) as u32));
    engine.dispatch.rate.items_per_sec =
        ips.and_then(|n| NonZeroU32::new(n.min(u32::MAX as usize) as u32));
    if let Some(t) = r.duration("dispatch.timeout") {
        engine.dispatch.timeout = t;
    }
    if let Some(p) = r.duration("dispatch.pause") {
        engine.dispatch.pause = Some(p);
    }
    if let Some(leaf) = r.leaf("dispatch.split") {
        let strategy = match &leaf.value {
            Val::Str(s) if s == "bisect" => Ok(SplitStrategy::Bisect),
            Val::Array(items) => {
                let rungs: Option<Vec<usize>> = items
                    .iter()
                    .map(|v| match v {
                        Val::Int(i) if *i >= 1 => Some(*i as usize),
                        _ => None,
                    })
                    .collect();
                match rungs {
                    Some(r) => SplitStrategy::ladder(&r).map_err(|e| e.to_string()),
                    None => Err("a ladder must hold positive integers, e.g. [15, 5, 1]".to_owned()),
                }
            }
            _ => Err("expected \"bisect\" or a ladder such as [15, 5, 1]".to_owned()),
        };
        match strategy {
            Ok(s) => engine.dispatch.split = s,
            Err(m) => r.err("dispatch.split", leaf.line, m),
        }
    }
}

fn read_retry(r: &mut Reader<'_>, engine: &mut EngineConfig) {
    let attempts = r.positive("retry.max_attempts");
    let base = r.duration("retry.backoff_base");
    let max = r.duration("retry.backoff_max");
    let split_after = r.int("retry.split_after", 0);
    if attempts.is_some() || base.is_some() || max.is_some() {
        let d = RetryPolicy::default();
        let attempts = attempts.map_or(d.max_attempts(), |a| a.min(u32::MAX as usize) as u32);
        match RetryPolicy::new(
            NonZeroU32::new(attempts).unwrap_or(NonZeroU32::MIN),
            base.unwrap_or(Duration::from_millis(100)),
            max.unwrap_or(Duration::from_secs(30)),
        ) {
            Ok(p) => engine.retry = p,
            Err(e) => {
                let line = r.section_line("retry");
                r.err("retry", line, e.to_string());
            }
        }
    }
    if let Some(s) = split_after {
        engine.retry = engine.retry.clone().split_after(s as u32);
    }
}

/// Seed 000's file: a SQL query against `DATABASE_URL`, column mapping onto a monday.com
/// board through `MONDAY_API_URL` (default `https://api.monday.com/v2`) with
/// `MONDAY_API_TOKEN`; its `max_batch_size` and `max_concurrent_batches` are caps.
fn seed_job(r: &mut Reader<'_>) -> Option<JobConfig> {
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
    let mut vars = Map::new();
    vars.insert("board_id".into(), board_id?);
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
    });
    Some(JobConfig {
        name,
        path: r.file.path.clone(),
        source: SourceSpec::Sql {
            url: database_url?,
            query: query?,
            key: KeyBy::Column(item_id_column),
        },
        handler,
        engine,
        dead_letters: r.beside_job("dead.jsonl"),
        checkpoint: Some(r.beside_job("checkpoint.db")),
        seed_format: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn check(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<JobConfig, Error> {
        let f = JobFile::parse(Path::new("/jobs/board.toml"), text).unwrap();
        validate(
            &f,
            &LoadOptions {
                env: Some(env),
                ..Default::default()
            },
        )
    }

    const SEED: &str = r#"[metadata]
board_id = "8709134353"

[query_config]
query = """
SELECT monday_item_id, fob_date, country_of_origin
FROM planning_board_updates
WHERE needs_update = 1
"""

[column_mapping]
"date4" = "fob_date"              # FOB Date
"country" = "country_of_origin"   # Country (auto-formatted)

[validation]
max_batch_size = 15              # Initial batch size
max_concurrent_batches = 3       # Concurrent processing
request_timeout_seconds = 25     # Avoid 30s timeout
"#;

    #[test]
    fn seed_000_file_maps_onto_sql_and_graphql() {
        let env = env_of(&[
            ("DATABASE_URL", "/data/planning.db"),
            ("MONDAY_API_TOKEN", "tok"),
        ]);
        let job = check(SEED, &env).unwrap();
        assert!(job.seed_format);
        match &job.source {
            SourceSpec::Sql { url, query, key } => {
                assert_eq!(url, "/data/planning.db");
                assert!(query.contains("planning_board_updates"));
                assert_eq!(key, &KeyBy::Column("monday_item_id".into()));
            }
            other => panic!("{other:?}"),
        }
        let HandlerSpec::Graphql(g) = &job.handler else {
            panic!()
        };
        assert_eq!(g.url, "https://api.monday.com/v2");
        assert_eq!(g.columns[0].0, "date4");
        assert_eq!(job.engine.max_items(), 15);
        assert_eq!(job.engine.dispatch.concurrency.cap(), 3);
        assert_eq!(job.engine.dispatch.timeout, Duration::from_secs(25));
        assert_eq!(
            job.checkpoint.as_deref(),
            Some(Path::new("/jobs/board.checkpoint.db"))
        );
    }

    #[test]
    fn seed_file_without_environment_names_the_variables() {
        let env = env_of(&[]);
        let err = check(SEED, &env).unwrap_err().to_string();
        assert!(
            err.contains("DATABASE_URL") && err.contains("MONDAY_API_TOKEN"),
            "{err}"
        );
        assert!(err.contains("/jobs/board.toml:"), "{err}");
    }

    #[test]
    fn every_error_at_once_with_lines() {
        let text = "[source]\ntype = \"csv\"\n\n[handler]\ntype = \"graphql\"\nurl = \"${NOPE}\"\nmutation = 5\n\n[dispatch]\ntimout = \"5s\"\nsplit = [5, 15]\n";
        let env = env_of(&[]);
        let err = check(text, &env).unwrap_err();
        let Error::Many(errors) = &err else {
            panic!("{err}")
        };
        let text = err.to_string();
        assert!(
            text.contains("/jobs/board.toml:1: `source.path`: missing required key"),
            "{text}"
        );
        assert!(
            text.contains(":6: `handler.url`: environment variable `NOPE` is not set"),
            "{text}"
        );
        assert!(
            text.contains(":7: `handler.mutation`: expected a string, found an integer"),
            "{text}"
        );
        assert!(
            text.contains(":10: `dispatch.timout`: unknown key; expected one of:"),
            "{text}"
        );
        assert!(text.contains(":11: `dispatch.split`"), "{text}");
        let lines: Vec<usize> = errors
            .iter()
            .map(|e| match e {
                Error::Config { line, .. } => *line,
                _ => 0,
            })
            .collect();
        assert!(
            lines.windows(2).all(|w| w[0] <= w[1]),
            "sorted by line: {lines:?}"
        );
        assert_eq!(errors.len(), 5, "{text}");
    }

    #[test]
    fn exec_and_http_handlers() {
        let env = env_of(&[("TOKEN", "t")]);
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"exec\"\nprogram = \"python3\"\nargs = [\"model.py\", \"--fast\"]\nworkers = 2\n[handler.env]\nMODEL = \"small\"\n";
        let job = check(text, &env).unwrap();
        let HandlerSpec::Exec(e) = &job.handler else {
            panic!()
        };
        assert_eq!(
            (e.program.as_str(), e.args.len(), e.workers),
            ("python3", 2, 2)
        );
        assert_eq!(e.env, vec![("MODEL".to_owned(), "small".to_owned())]);
        let text = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nbody = \"{{ items | json }}\"\n[handler.headers]\nAuthorization = \"Bearer ${TOKEN}\"\n";
        let job = check(text, &env).unwrap();
        let HandlerSpec::Http(h) = &job.handler else {
            panic!()
        };
        assert_eq!(h.method, "POST");
        assert_eq!(h.headers[0].1, "Bearer t");
        let bad = "[source]\ntype = \"csv\"\npath = \"a.csv\"\n[handler]\ntype = \"exec\"\nargs = \"x\"\n";
        let err = check(bad, &env).unwrap_err().to_string();
        assert!(
            err.contains("`handler.program`: missing required key"),
            "{err}"
        );
        assert!(
            err.contains(":6: `handler.args`: expected an array of strings"),
            "{err}"
        );
    }

    #[test]
    fn ferry_format_with_caps_and_overrides() {
        let text = "[source]\ntype = \"jsonl\"\npath = \"in.jsonl\"\nkey = \"id\"\n[handler]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n[batch]\nmax_items = 40\ntarget_latency = \"500ms\"\n[dispatch]\nmax_concurrency = 6\nsplit = [15, 5, 1]\ntimeout = 12\n";
        let env = env_of(&[]);
        let job = check(text, &env).unwrap();
        assert_eq!(
            job.source,
            SourceSpec::Jsonl {
                path: "/jobs/in.jsonl".into(),
                key: KeyBy::Column("id".into())
            }
        );
        assert_eq!(job.engine.max_items(), 40);
        assert_eq!(job.engine.dispatch.concurrency.cap(), 6);
        assert_eq!(job.engine.dispatch.timeout, Duration::from_secs(12));
        assert!(
            matches!(job.engine.sizing, BatchSizing::Adaptive(ref c) if c.target_latency == Duration::from_millis(500))
        );
        assert_eq!(job.dead_letters, Path::new("/jobs/board.dead.jsonl"));
    }
}
