//! `ferry-bench service --url URL`: the same client and load against a server that is
//! already running (`ferry serve`, or a peer implementation of the KubeSentiment-compatible
//! batch API), so both are measured by one client in one run; with `--pid`, the server
//! process's CPU time per item.

use std::sync::Arc;

use anyhow::Context;

use crate::args::ServiceArgs;
use crate::client::Client;
use crate::service::{load, thousands};

/// A process's CPU time (user + system, every thread, those that ended included), in
/// seconds, from `/proc/PID/stat`.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is {pid} a running process?)"))?;
    cpu_from_stat(&stat, clock_ticks())
        .with_context(|| format!("/proc/{pid}/stat has no CPU times: {stat}"))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in seconds. The command
/// name (field 2, in parentheses) may hold spaces, so fields are counted after its `)`.
fn cpu_from_stat(stat: &str, ticks_per_second: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so fields 14 and 15 are 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux if that fails).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Runs the load against `url` and prints the figures.
pub(crate) async fn run(url: &str, args: &ServiceArgs) -> anyhow::Result<()> {
    let base = url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let client = Arc::new(Client::new(http, base.clone(), args.poll));
    let corpus = Arc::new(ferry_models::sentiment::sample_texts(
        args.jobs * args.items,
        0x5eed_0001,
    ));
    // The warm-up job runs inside `load`, before its clock starts; CPU is read around the
    // measured part only: from after the warm-up (`on_start`) to the end.
    let mut cpu_at_start = None;
    let outcome = load(&client, args, corpus, || {
        cpu_at_start = Some(args.pid.map(cpu_seconds).transpose());
    })
    .await?;
    let cpu_at_end = args.pid.map(cpu_seconds).transpose()?;
    println!(
        "server {base}, {} jobs x {} items, {} clients polling every {}",
        args.jobs,
        args.items,
        args.clients,
        humantime::format_duration(args.poll)
    );
    println!(
        "  {} items in {:.2} s = {} items/s; submit-to-done p50 {:.1} ms, p95 {:.1} ms, \
         p99 {:.1} ms",
        thousands(outcome.items as f64),
        outcome.elapsed.as_secs_f64(),
        thousands(outcome.rate()),
        outcome.quantile_ms(0.50),
        outcome.quantile_ms(0.95),
        outcome.quantile_ms(0.99),
    );
    if let (Some(pid), Some(Ok(Some(start))), Some(end)) = (args.pid, cpu_at_start, cpu_at_end) {
        let cpu = end - start;
        println!(
            "  server process {pid}: {cpu:.2} s CPU (user + system) = {:.1} us per item, \
             {:.0} % of one core",
            cpu * 1e6 / outcome.items as f64,
            100.0 * cpu / outcome.elapsed.as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_times_past_a_name_with_spaces() {
        let stat = "4242 (ferry serve) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 566 0 0 20 0 9";
        assert_eq!(cpu_from_stat(stat, 100.0), Some(18.0));
        assert_eq!(cpu_from_stat("garbage", 100.0), None);
    }

    #[test]
    fn reads_this_process() {
        let own = cpu_seconds(std::process::id()).unwrap();
        assert!(own >= 0.0);
    }
}
