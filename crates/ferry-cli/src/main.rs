//! `ferry`: the command-line face of Ferry. Thin on purpose: argument parsing, wiring and
//! exit codes; everything else lives in the library crates.

mod config;
mod demo;
mod handlers;
mod interrupt;
mod keys;
mod phased;
mod progress;
mod run;
mod serve;
mod tune;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::interrupt::Exit;

/// mimalloc: items are built on parser threads and freed on the runtime's, a pattern the
/// system allocator pays for in lock contention (a third of the XML ingest's CPU time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Shown at the end of `ferry --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0    every item succeeded (or nothing to do)
  1    error (the message says what)
  2    bad usage (unknown flag, missing argument)
  3    some items were dead-lettered (see the dead-letter file)
  130  interrupted by Ctrl-C or SIGTERM (`ferry run ... --resume` continues)";

/// Ferry moves many items through slow, rate-limited, failure-prone targets as fast as they
/// allow: in batches, with adaptive concurrency and batch size, retries, splits and dead
/// letters, and no lost or duplicated item.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// Log filter (e.g. `info`, `ferry_core=debug`); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job against a built-in simulated API (slots, per-item cost, a hidden size limit,
    /// a rate limit, poison items) and print the end report. Ferry is told none of the
    /// simulator's settings; watch it find them. Ctrl-C stops it with a report (exit 130).
    #[command(after_help = EXIT_CODES)]
    Demo(demo::DemoArgs),
    /// Run a job file: read the source, send batches through the handler, checkpoint each
    /// item's outcome (resumable with --resume), write dead letters, print the end report.
    /// Ctrl-C stops it gracefully (report, checkpoint, exit 130; see --grace).
    #[command(after_help = EXIT_CODES)]
    Run(run::RunArgs),
    /// Check a job file and report every error at once (file, line, key, what was expected).
    Validate(run::ValidateArgs),
    /// Run a job on its first N items (--sample) over a sweep of stage workers and batch
    /// sizes, into a scratch target you name (--set handler.url=..., --reset SQL), and print
    /// a table (items/s, sink p95, bottleneck) and the --set line of the best setting.
    Tune(tune::TuneArgs),
    /// Run the job service: the `/v1` API, the KubeSentiment-compatible batch API
    /// (`/api/v1/batch/...`) and an in-process worker with the built-in handlers (`sentiment`,
    /// `echo`) and those of `--config`, on a durable store (SQLite by default).
    Serve(serve::ServeArgs),
    /// Run a worker that claims items from a shared store (several may run at once).
    Worker(serve::WorkerArgs),
    /// Manage the service's API keys: create (printed once, stored hashed), list, revoke.
    Keys(keys::KeysArgs),
}

/// Exit codes: 0 all items succeeded, 1 error, 2 bad usage (clap), 3 some items were
/// dead-lettered, 130 interrupted (Ctrl-C or SIGTERM).
fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(a) => serve::log_format(a.log_format, a.config.as_deref(), false),
        Command::Worker(a) => serve::log_format(a.log_format, a.config.as_deref(), true),
        _ => Ok(config::LogFormat::Text),
    };
    let format = match format {
        Ok(format) => format,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => logs.init(),
        config::LogFormat::Json => logs.json().init(),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Validate(args) => run::validate(args).map(|()| Exit::Ok),
            Command::Tune(args) => tune::tune(args).await.map(|()| Exit::Ok),
            Command::Serve(args) => serve::serve(args).await.map(|()| Exit::Ok),
            Command::Worker(args) => serve::worker(args).await.map(|()| Exit::Ok),
            Command::Keys(args) => keys::run(args).await.map(|()| Exit::Ok),
        }
    });
    match result {
        Ok(exit) => exit.code(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
