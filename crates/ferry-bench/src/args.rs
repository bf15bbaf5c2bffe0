//! The options of `ferry-bench service` (clap), apart from `main` so the modules that read
//! them do not reach back into the crate root.

use std::time::Duration;

use clap::{Args, ValueEnum};

/// Options of `ferry-bench service`.
#[derive(Debug, Args)]
pub(crate) struct ServiceArgs {
    /// A store to run on (repeatable): `sqlite` (a new file in a temporary directory) or a
    /// postgres:// URL (a new schema in it, dropped afterwards). Default: `sqlite`, then
    /// PostgreSQL at $DATABASE_URL or postgres://postgres@127.0.0.1:5432/test if it answers.
    #[arg(long = "store")]
    pub(crate) stores: Vec<String>,
    /// Jobs submitted (K).
    #[arg(long, default_value_t = 200)]
    pub(crate) jobs: usize,
    /// Items (texts) per job (N).
    #[arg(long, default_value_t = 100)]
    pub(crate) items: usize,
    /// Concurrent clients (M); each submits a job, polls it to completion, fetches its
    /// results, then takes the next.
    #[arg(long, default_value_t = 8)]
    pub(crate) clients: usize,
    /// The handler jobs run: `sentiment` (the VADER model), `echo` (no-op) or `sleep`
    /// (no-op after 20 ms per batch; no baseline).
    #[arg(long, value_enum, default_value_t = HandlerKind::Sentiment)]
    pub(crate) handler: HandlerKind,
    /// Worker processes (`ferry worker`); 0 runs one worker inside the service process, as
    /// `ferry serve` does. SQLite wake-ups do not cross processes: use 0 there.
    #[arg(long, default_value_t = 0)]
    pub(crate) workers: usize,
    /// Pause between a client's status polls.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    pub(crate) poll: Duration,
    /// Skip the baselines.
    #[arg(long)]
    pub(crate) no_baseline: bool,
    /// Load a server already running at this base URL (`http://host:port`) that speaks the
    /// KubeSentiment-compatible batch API (`ferry serve`, or a peer implementation), instead
    /// of starting one: no store, no workers, no baseline; the same client and load.
    #[arg(long, conflicts_with_all = ["stores", "workers"])]
    pub(crate) url: Option<String>,
    /// With `--url`: the server's process id; its CPU time (user + system, all threads,
    /// from /proc) over the measured load is printed per item.
    #[arg(long, requires = "url")]
    pub(crate) pid: Option<u32>,
}

/// The handler the benchmark's jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HandlerKind {
    /// The VADER sentiment model.
    Sentiment,
    /// The no-op handler: each item's payload is its result.
    Echo,
    /// The no-op handler after 20 ms per batch.
    Sleep,
}

impl HandlerKind {
    /// The handler's registered name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HandlerKind::Sentiment => "sentiment",
            HandlerKind::Echo => "echo",
            HandlerKind::Sleep => "sleep",
        }
    }
}
