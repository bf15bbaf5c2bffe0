//! Ferry's own job-file format (`docs/job-file.md`): `[job]`, `[source]`, `[[stage]]`
//! (`stage_format`), `[handler]`,
//! `[vars]`, `[batch]`, `[dispatch]`, `[retry]`, `[dead_letters]`, `[checkpoint]`. Limits in
//! it are caps: the adaptive controllers work under them unless a fixed setting is asked for.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use ferry_core::adaptive::{BatchSizeConfig, ConcurrencyConfig};
use ferry_core::{
    BatchSizing, Concurrency, EngineConfig, FlushPolicy, Priority, RetryPolicy, SplitStrategy,
};
use serde_json::{Map, Value};

use super::file::Val;
use super::reader::Reader;
use super::run::DEFAULT_SHUTDOWN_GRACE;
use super::spec::{raise_concurrency, HandlerSpec, JobConfig, JobFormat, OnError, SourceSpec};
use crate::graphql::GraphqlConfig;

/// Reads a job in Ferry's format.
pub(super) fn ferry_job(r: &mut Reader<'_>) -> Option<JobConfig> {
    let name = r.string("job.name").unwrap_or_else(|| r.stem());
    let preset = r.string("job.preset");
    let mut engine = match preset.as_deref().map(|p| (p, EngineConfig::preset(p))) {
        None => EngineConfig::standard(),
        Some((_, Some(c))) => c,
        Some((p, None)) => {
            let line = r.line_of("job.preset");
            let message =
                format!("unknown preset `{p}`; expected standard, high_throughput or low_memory");
            r.err("job.preset", line, message);
            EngineConfig::standard()
        }
    };
    engine.name = name.clone();

    let source = read_source(r);
    let stages = super::stage_format::read_stages(r);
    let on_error = read_on_error(r);
    let vars = read_vars(r);
    let handler = read_handler(r, vars);

    read_engine(r, &mut engine);
    if let Some(h) = &handler {
        fit_engine_to_handler(r, h, &mut engine);
    }
    // Not `read_dispatch`: how long an interrupted run waits is not about dispatching.
    engine.shutdown_grace = r
        .duration("dispatch.shutdown_grace")
        .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
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
        stages,
        on_error,
        handler: handler?,
        engine,
        dead_letters,
        checkpoint: checkpoint_on.then_some(checkpoint_path),
        format: JobFormat::Ferry,
    })
}

/// Reads `[source]`. Every key of the chosen type is read before any is combined, so a
/// missing one does not leave the others unread (and reported as unknown).
fn read_source(r: &mut Reader<'_>) -> Option<SourceSpec> {
    match r.required_string("source.type").as_deref() {
        Some("csv") => {
            let path = r.required_string("source.path");
            let key = r.key_by("source.key");
            path.map(|p| SourceSpec::Csv {
                path: r.relative(&p),
                key,
            })
        }
        Some("jsonl") => {
            let path = r.required_string("source.path");
            let key = r.key_by("source.key");
            path.map(|p| SourceSpec::Jsonl {
                path: r.relative(&p),
                key,
            })
        }
        Some("sql") => {
            let url = r.required_string("source.url");
            let query = r.required_string("source.query");
            let key = r.key_by("source.key");
            url.zip(query)
                .map(|(url, query)| SourceSpec::Sql { url, query, key })
        }
        Some("xml") => super::xml_format::read_xml_source(r),
        Some(other) => {
            r.unknown_type("source", other, "csv, jsonl, sql or xml");
            None
        }
        None => {
            r.skip_section("source");
            None
        }
    }
}

/// Reads the engine's sections, `[batch]`, `[dispatch]` (but `dispatch.shutdown_grace`) and
/// `[retry]`, over `engine`: shared by job files and the service's `[handler.NAME]` tables.
pub(super) fn read_engine(r: &mut Reader<'_>, engine: &mut EngineConfig) {
    read_batch(r, engine);
    read_dispatch(r, engine);
    read_retry(r, engine);
}

/// Caps the engine's concurrency at an exec handler's `workers` unless the file sets
/// `dispatch.max_concurrency` or `dispatch.concurrency`: each child serves one batch at a
/// time, so a further call would only wait for a child, its timeout running meanwhile.
pub(super) fn fit_engine_to_handler(
    r: &Reader<'_>,
    handler: &HandlerSpec,
    engine: &mut EngineConfig,
) {
    if let HandlerSpec::Exec(e) = handler {
        if !r.has("dispatch.max_concurrency") && !r.has("dispatch.concurrency") {
            raise_concurrency(
                engine,
                e.workers.max(1).min(engine.dispatch.concurrency.cap()),
            );
        }
    }
}

/// Reads `source.on_error`: `"dead_letter"` (the default) or `"stop"`.
fn read_on_error(r: &mut Reader<'_>) -> OnError {
    match r.string("source.on_error").as_deref() {
        None | Some("dead_letter") => OnError::DeadLetter,
        Some("stop") => OnError::Stop,
        Some(other) => {
            let line = r.line_of("source.on_error");
            r.err(
                "source.on_error",
                line,
                format!("unknown value `{other}`; expected \"dead_letter\" or \"stop\""),
            );
            OnError::DeadLetter
        }
    }
}

/// Reads `[vars]`, the templates' values.
pub(super) fn read_vars(r: &mut Reader<'_>) -> Map<String, Value> {
    r.table("vars")
        .into_iter()
        .map(|(k, l)| (k, l.value.to_json()))
        .collect()
}

/// Reads `[handler]`; `vars` are the template values of `[vars]`. Shared by job files and
/// the service's `[handler.NAME]` tables.
pub(super) fn read_handler(r: &mut Reader<'_>, vars: Map<String, Value>) -> Option<HandlerSpec> {
    match r.required_string("handler.type").as_deref() {
        Some("graphql") => {
            let url = r.required_string("handler.url");
            let mutation = r.required_string("handler.mutation");
            let headers = r.string_table("handler.headers");
            let columns = r.string_table("handler.columns");
            let board_id = r.leaf("handler.board_id").map(|l| match l.value.to_json() {
                Value::String(s) => s,
                other => other.to_string(),
            });
            url.zip(mutation).map(|(url, mutation)| {
                HandlerSpec::Graphql(GraphqlConfig {
                    url,
                    headers,
                    mutation,
                    columns,
                    vars,
                    board_id,
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
            let children = super::copy_format::read_children(r);
            if !children.is_empty() && key.is_none() {
                let line = r.section_line("handler");
                r.err(
                    "handler.key",
                    line,
                    "child tables need the parent's key column (their rows are joined to it)",
                );
            }
            url.zip(table).map(|(url, table)| {
                HandlerSpec::Sql(crate::sink::SqlSinkConfig {
                    url,
                    table,
                    columns,
                    key,
                    children,
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
        Some("postgres_copy") => super::copy_format::read_copy_handler(r),
        Some("jsonl") => r
            .required_string("handler.path")
            .map(|p| HandlerSpec::Jsonl {
                path: r.relative(&p),
            }),
        Some(other) => {
            r.unknown_type(
                "handler",
                other,
                "graphql, http, exec, sql, postgres_copy or jsonl",
            );
            None
        }
        None => {
            r.skip_section("handler");
            None
        }
    }
}

/// The per-priority waits (see [`Priority`]): `batch.max_wait` is the default (medium)
/// item's, `batch.max_wait_high` and `batch.max_wait_low` the others'. `batch.max_wait_low`
/// left out waits at least as long as `batch.max_wait`, so raising `max_wait` alone stays
/// valid. `batch.max_wait_urgent`, the old top level's key, is still read as a deprecated
/// alias of `batch.max_wait_high`; giving both is an error.
fn read_waits(r: &mut Reader<'_>, mut flush: FlushPolicy) -> FlushPolicy {
    let high = r.duration("batch.max_wait_high");
    let urgent = r.duration("batch.max_wait_urgent");
    if high.is_some() && urgent.is_some() {
        let line = r.line_of("batch.max_wait_urgent");
        r.err(
            "batch.max_wait_urgent",
            line,
            "the deprecated name of batch.max_wait_high: set only batch.max_wait_high",
        );
    }
    if let Some(d) = high.or(urgent) {
        flush = flush.max_wait(Priority::High, d);
    }
    if let Some(d) = r.duration("batch.max_wait") {
        flush = flush.max_wait(Priority::Medium, d);
    }
    let low = r.duration("batch.max_wait_low").unwrap_or_else(|| {
        flush
            .wait_for(Priority::Low)
            .max(flush.wait_for(Priority::Medium))
    });
    flush.max_wait(Priority::Low, low)
}

fn read_batch(r: &mut Reader<'_>, engine: &mut EngineConfig) {
    let mut flush: FlushPolicy = engine.flush.clone();
    if let Some(n) = r.positive("batch.max_items").and_then(NonZeroUsize::new) {
        flush = flush.max_items(n);
    }
    if let Some(n) = r.positive("batch.max_bytes").and_then(NonZeroUsize::new) {
        flush = flush.max_bytes(n);
    }
    engine.flush = read_waits(r, flush);
    let adaptive = r.boolean("batch.adaptive").unwrap_or(true);
    let min = r.positive("batch.min_items");
    let initial = r.positive("batch.initial_items");
    let target = r.duration("batch.target_latency");
    let headroom = r.share("batch.headroom");
    let calm_headroom = r.share("batch.calm_headroom");
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
        if let Some(h) = headroom {
            c.headroom = h;
        }
        if let Some(h) = calm_headroom {
            c.calm_headroom = h;
        }
        BatchSizing::Adaptive(c)
    } else {
        BatchSizing::Fixed
    };
}

fn read_dispatch(r: &mut Reader<'_>, engine: &mut EngineConfig) {
    let cap = r.positive("dispatch.max_concurrency");
    if let Some(leaf) = r.leaf("dispatch.concurrency") {
        match leaf.value {
            Val::Int(n) if n >= 1 => {
                engine.dispatch.concurrency =
                    Concurrency::Fixed(NonZeroUsize::new(n as usize).unwrap_or(NonZeroUsize::MIN))
            }
            Val::Str(s) if s == "adaptive" => {
                engine.dispatch.concurrency = Concurrency::Adaptive(ConcurrencyConfig::default());
            }
            _ => r.err(
                "dispatch.concurrency",
                leaf.line,
                "expected \"adaptive\" or a positive integer (a fixed limit)",
            ),
        }
    }
    if let Some(cap) = cap {
        raise_concurrency(engine, cap);
    }
    if let Some(n) = r.positive("dispatch.initial_concurrency") {
        let line = r.line_of("dispatch.initial_concurrency");
        match &mut engine.dispatch.concurrency {
            Concurrency::Adaptive(c) if n <= c.max => c.initial = n.max(c.min),
            Concurrency::Adaptive(c) => r.err(
                "dispatch.initial_concurrency",
                line,
                format!("{n} is above dispatch.max_concurrency ({})", c.max),
            ),
            Concurrency::Fixed(_) => r.err(
                "dispatch.initial_concurrency",
                line,
                "only an adaptive limit starts somewhere: drop it or dispatch.concurrency",
            ),
        }
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
    if let Some(d) = r.duration("dispatch.deadline") {
        engine.dispatch.deadline = Some(d);
    }
    if let Some(learn) = r.boolean("dispatch.learn_rate") {
        engine.dispatch.learn_rate = learn;
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::job::file::JobFile;

    /// The waits a `[batch]` text sets, or the keys of its errors.
    fn waits(text: &str) -> Result<[Duration; 3], Vec<String>> {
        let file = JobFile::parse(Path::new("/jobs/w.toml"), text).unwrap();
        let env = |_: &str| None;
        let mut r = Reader::new(&file, &env, false);
        let flush = read_waits(&mut r, FlushPolicy::default());
        if !r.errors.is_empty() {
            return Err(r.errors.iter().map(ToString::to_string).collect());
        }
        Ok(Priority::DESCENDING.map(|p| flush.wait_for(p)))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Waits listed high, medium, low.
    #[test]
    fn waits_by_priority_with_the_deprecated_urgent_key() {
        let table: [(&str, [Duration; 3]); 6] = [
            ("", [ms(20), ms(1000), ms(5000)]),
            (
                "[batch]\nmax_wait_high = \"5ms\"\nmax_wait = \"50ms\"\nmax_wait_low = \"90ms\"\n",
                [ms(5), ms(50), ms(90)],
            ),
            // The old top level's key still sets the high wait.
            (
                "[batch]\nmax_wait_urgent = \"7ms\"\n",
                [ms(7), ms(1000), ms(5000)],
            ),
            // Raising max_wait alone raises low with it, so the file stays valid.
            (
                "[batch]\nmax_wait = \"10s\"\n",
                [ms(20), ms(10_000), ms(10_000)],
            ),
            ("[batch]\nmax_wait = \"2s\"\n", [ms(20), ms(2000), ms(5000)]),
            (
                "[batch]\nmax_wait = \"2s\"\nmax_wait_low = \"1s\"\n",
                [ms(20), ms(2000), ms(1000)],
            ),
        ];
        for (text, want) in table {
            assert_eq!(waits(text), Ok(want), "{text}");
        }
        let both = "[batch]\nmax_wait_high = \"5ms\"\nmax_wait_urgent = \"7ms\"\n";
        let errs = waits(both).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains(":3: `batch.max_wait_urgent`")
                && errs[0].contains("set only batch.max_wait_high"),
            "{errs:?}"
        );
    }
}
