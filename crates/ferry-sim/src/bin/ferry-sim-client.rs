//! `ferry-sim-client`: the benchmark's fixed client, told a profile's settings. It sends the
//! monday.com board-update work to a running `ferry-sim` over HTTP (see
//! [`ferry_sim::FixedClient`] for what it does with each answer), then prints items/s, the
//! process CPU per item, and what it confirmed against the simulator's `GET /stats`.
//!
//! ```text
//! ferry-sim-client --url http://127.0.0.1:8080/v2 --profile token-bucket --items 5000
//! ```
//!
//! `--profile` takes the batch size, concurrency and rate from that profile's plan (the
//! same the simulator prints); `--batch`, `--concurrency` and `--rate` override them.
//! Exit codes: 0 every item confirmed or rejected by name and the counts agree with
//! `/stats`, 1 they do not, 2 usage error.

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use ferry_sim::{FixedClient, Profile, Reply, Stats, Transport, Work};
use serde_json::Value;

/// A plain fixed client for ferry-sim, told the API's settings.
#[derive(Debug, Parser)]
#[command(name = "ferry-sim-client", version)]
struct Args {
    /// The simulator's GraphQL endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/v2")]
    url: String,
    /// The profile whose plan to follow.
    #[arg(long, default_value = "default")]
    profile: Profile,
    /// Mutations per request (default: the profile's plan).
    #[arg(long)]
    batch: Option<usize>,
    /// Requests in flight (default: the profile's plan).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Requests started per second; 0 for no pacing (default: the profile's plan).
    #[arg(long)]
    rate: Option<f64>,
    /// Items to send.
    #[arg(long, default_value_t = 5_000)]
    items: usize,
    /// One poisoned item in every N.
    #[arg(long, value_name = "N")]
    poison_every: Option<usize>,
    /// POST /reset before starting.
    #[arg(long)]
    reset: bool,
}

/// Posts over HTTP with reqwest.
#[derive(Debug, Clone)]
struct Http {
    client: reqwest::Client,
    url: String,
}

impl Transport for Http {
    async fn post(&self, body: String) -> Result<Reply, String> {
        let response = self
            .client
            .post(&self.url)
            .header("Authorization", "ferry-sim-client")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }
}

/// User and system CPU time of this process so far (Linux; zero elsewhere).
fn process_cpu() -> Duration {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks of 1/100 s (USER_HZ).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    let mut plan = args.profile.config().plan();
    if let Some(b) = args.batch {
        plan.batch = b;
    }
    if let Some(c) = args.concurrency {
        plan.concurrency = c;
    }
    if let Some(r) = args.rate {
        plan.rate = (r > 0.0).then_some(r);
    }
    let base = args
        .url
        .strip_suffix("/v2")
        .context("--url must end in /v2")?
        .to_owned();
    let client = reqwest::Client::new();
    if args.reset {
        client
            .post(format!("{base}/reset"))
            .send()
            .await?
            .error_for_status()?;
    }
    let work = Work {
        items: args.items,
        poison_every: args.poison_every,
        ..Work::default()
    };
    println!(
        "fixed client: {} items, batch {}, concurrency {}, rate {}",
        work.items,
        plan.batch,
        plan.concurrency,
        plan.rate
            .map_or_else(|| "unpaced".to_owned(), |r| format!("{r:.2}/s"))
    );
    let cpu0 = process_cpu();
    let report = FixedClient { plan }
        .run(
            Http {
                client: client.clone(),
                url: args.url.clone(),
            },
            &work,
        )
        .await;
    let cpu = process_cpu().saturating_sub(cpu0);
    let stats: Stats = client
        .get(format!("{base}/stats"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("reading /stats")?;
    println!(
        "{:.1} items/s: {} confirmed, {} rejected in {:.2} s; {} requests ({} after 429, {} after budget errors, {} after 5xx, {} after dropped connections, {} splits)",
        report.items_per_s(),
        report.confirmed,
        report.rejected.len(),
        report.elapsed.as_secs_f64(),
        report.requests,
        report.rate_limited,
        report.budget_exhausted,
        report.server_errors,
        report.dropped,
        report.splits,
    );
    println!(
        "cpu {:.1} µs per item; /stats: {} distinct items applied, {} applies",
        cpu.as_secs_f64() * 1e6 / report.confirmed.max(1) as f64,
        stats.items.len(),
        stats.mutations_applied,
    );
    let rejected_applied = report
        .rejected
        .iter()
        .filter(|id| stats.items.contains_key(id))
        .count();
    if stats.items.len() != report.confirmed || rejected_applied > 0 {
        bail!(
            "the simulator applied {} distinct items ({rejected_applied} of them rejected here), the client confirmed {}",
            stats.items.len(),
            report.confirmed
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
