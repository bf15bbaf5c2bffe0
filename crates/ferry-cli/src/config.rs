//! The settings file of `ferry serve` and `ferry worker` (`--config ferry.toml`) and where
//! each setting comes from: a flag, else its `FERRY_*` environment variable (clap reads
//! both), else a KubeSentiment `ASYNC_BATCH_*` variable (for the batch API's settings), else
//! the file, else the default.
//!
//! The file has a `[serve]` and a `[worker]` table whose keys are the flags' names with
//! underscores (`result_ttl = "24h"`, `queue_limit_high = 100`); an unknown key is an error
//! naming it with its line. The top-level `[handler.NAME]` tables belong to the handler
//! definitions and are not read here; any other top-level key is an error.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line (`tracing-subscriber`'s JSON format).
    Json,
}

/// `ferry.toml`: the tables this module reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// `[serve]`.
    #[serde(default)]
    pub(crate) serve: ServeFile,
    /// `[worker]`.
    #[serde(default)]
    pub(crate) worker: WorkerFile,
    /// `[handler.NAME]`: handler definitions, read elsewhere.
    #[serde(default, rename = "handler")]
    _handler: Option<toml::Table>,
}

/// `[serve]`: `ferry serve`'s settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeFile {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) store: Option<String>,
    pub(crate) no_worker: Option<bool>,
    pub(crate) result_ttl: Option<String>,
    pub(crate) tenant_rps: Option<std::num::NonZeroU32>,
    pub(crate) tenant_max_queued: Option<std::num::NonZeroU64>,
    pub(crate) tenant_max_in_flight: Option<std::num::NonZeroU64>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) no_batch_api: Option<bool>,
    pub(crate) max_texts: Option<usize>,
    pub(crate) default_timeout_seconds: Option<f64>,
    pub(crate) max_jobs: Option<u64>,
    pub(crate) queue_limit_high: Option<std::num::NonZeroUsize>,
    pub(crate) queue_limit_medium: Option<std::num::NonZeroUsize>,
    pub(crate) queue_limit_low: Option<std::num::NonZeroUsize>,
    pub(crate) cache_ttl: Option<String>,
    pub(crate) cache_size: Option<usize>,
}

/// `[worker]`: `ferry worker`'s settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerFile {
    pub(crate) store: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) lease: Option<String>,
    pub(crate) claim_batch: Option<usize>,
    pub(crate) tenant_max_in_flight: Option<std::num::NonZeroU64>,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) cache_ttl: Option<String>,
    pub(crate) cache_size: Option<usize>,
}

/// Reads `path` (none: every setting from its other sources).
pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the settings file {}", path.display()))?;
    parse(&text).with_context(|| format!("in the settings file {}", path.display()))
}

/// Parses a settings file's text; errors name the key and its line.
pub(crate) fn parse(text: &str) -> anyhow::Result<ConfigFile> {
    Ok(toml::from_str(text)?)
}

/// A duration written in the file under `[table] key` (`"30s"`, `"24h"`).
pub(crate) fn file_duration(
    value: Option<&str>,
    table: &str,
    key: &str,
) -> anyhow::Result<Option<Duration>> {
    value
        .map(|v| {
            humantime::parse_duration(v).with_context(|| {
                format!("[{table}] {key} = {v:?}: expected a duration such as \"30s\" or \"24h\"")
            })
        })
        .transpose()
}

/// The KubeSentiment setting `name` from the environment, when set.
pub(crate) fn async_batch<T: FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    async_batch_from(name, std::env::var(name).ok())
}

fn async_batch_from<T: FromStr>(name: &str, value: Option<String>) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match value {
        None => Ok(None),
        Some(v) => match v.trim().parse() {
            Ok(parsed) => Ok(Some(parsed)),
            Err(e) => bail!("{name}={v:?}: {e}"),
        },
    }
}

/// `ASYNC_BATCH_ENABLED` as Ferry's `no_batch_api` (`true`/`false`, `1`/`0`, `yes`/`no`).
pub(crate) fn async_batch_disabled() -> anyhow::Result<Option<bool>> {
    match std::env::var("ASYNC_BATCH_ENABLED")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None => Ok(None),
        Some("true" | "1" | "yes" | "on" | "True" | "TRUE") => Ok(Some(false)),
        Some("false" | "0" | "no" | "off" | "False" | "FALSE") => Ok(Some(true)),
        Some(other) => bail!("ASYNC_BATCH_ENABLED={other:?}: expected true or false"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_tables_and_ignores_handler_definitions() {
        let file = parse(
            r#"
            [serve]
            listen = "0.0.0.0:8000"
            store = "postgres://db/ferry"
            result_ttl = "2h"
            queue_limit_high = 7
            log_format = "json"
            tenant_max_queued = 5000
            tenant_max_in_flight = 64

            [worker]
            lease = "10s"
            metrics_addr = "0.0.0.0:9100"
            tenant_max_in_flight = 64

            [handler.embed]
            kind = "exec"
            command = ["python3", "embed.py"]
            "#,
        )
        .unwrap();
        assert_eq!(file.serve.listen, Some("0.0.0.0:8000".parse().unwrap()));
        assert_eq!(file.serve.queue_limit_high.map(|n| n.get()), Some(7));
        assert_eq!(file.serve.log_format, Some(LogFormat::Json));
        assert_eq!(
            file_duration(file.serve.result_ttl.as_deref(), "serve", "result_ttl").unwrap(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(file.worker.metrics_addr.map(|a| a.port()), Some(9100));
        assert_eq!(file.serve.tenant_max_queued.map(|n| n.get()), Some(5000));
        assert_eq!(file.serve.tenant_max_in_flight.map(|n| n.get()), Some(64));
        assert_eq!(file.worker.tenant_max_in_flight.map(|n| n.get()), Some(64));
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_and_line() {
        let err = parse("[serve]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen") && err.contains("line 3"), "{err}");
        let err = parse("stor = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("stor"), "{err}");
        let err = file_duration(Some("soon"), "worker", "lease")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[worker] lease"), "{err}");
    }

    #[test]
    fn async_batch_values_parse_or_say_which_variable() {
        assert_eq!(async_batch_from::<u64>("X", None).unwrap(), None);
        assert_eq!(
            async_batch_from::<u64>("X", Some(" 12 ".into())).unwrap(),
            Some(12)
        );
        let err = async_batch_from::<u64>("ASYNC_BATCH_MAX_JOBS", Some("many".into()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("ASYNC_BATCH_MAX_JOBS=\"many\""), "{err}");
    }
}
