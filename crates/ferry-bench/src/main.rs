//! `ferry-bench`: Ferry's load generator, kept out of the shipped `ferry` binary (it talks
//! to the store's tables by plain SQL for its baseline and pulls in an HTTP client and a
//! latency histogram).
//!
//! `ferry-bench service` loads the job service end to end. Per store, in turn: a fresh store
//! (`sqlite`: a new file in a temporary directory; a `postgres://` URL: a new schema, dropped
//! afterwards), the API on `127.0.0.1:0` in this process, and either one in-process worker
//! (`--workers 0`, as `ferry serve` runs) or W `ferry worker` processes (the `ferry` binary
//! beside this one, or `$FERRY_BIN`). One warm-up job first, untimed. Then M clients share K
//! jobs of N generated texts: each submits a job through the KubeSentiment-compatible batch
//! API's `POST /api/v1/batch/predict`, polls `GET status/{id}` every `--poll` until it is
//! `completed`, fetches `GET results/{id}` (and checks every text has a result), then takes
//! the next job. Printed: items/s from the first submit to the last results page, and
//! submit-to-done latency (submit sent until `completed` seen) p50/p95/p99.
//!
//! `ferry-bench service --url URL [--pid PID]` runs the same client and load against a server
//! already running (`ferry serve`, or the Python peer of `scripts/bench-service.sh`), so two
//! implementations are measured by one client in one run; with `--pid`, the server process's
//! CPU time over the measured load is printed per item.
//!
//! Baselines, same texts, same run: for `sentiment`, direct `predict` calls in one thread;
//! for `echo` (the no-op handler), the same rows written by plain SQL on the same store's
//! tables (each job: insert its row and its items, mark the items done, insert their
//! results, mark the job completed), from M concurrent connections.

mod args;
mod baseline;
mod client;
mod remote;
mod service;
mod target;
mod workers;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::ServiceArgs;

/// Benchmarks of Ferry, each printed beside a baseline measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "ferry-bench", version, about, long_about = None)]
struct Cli {
    /// Log filter (e.g. `info`, `ferry_server=debug`); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The job service end to end: K jobs x N items from M concurrent clients through the
    /// API, per store; prints items/s and submit-to-done latency p50/p95/p99 beside a
    /// baseline measured in the same run.
    Service(ServiceArgs),
}

/// Exit codes: 0 the benchmark ran, 1 error, 2 bad usage (clap).
fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
            BenchCommand::Service(args) => service::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
