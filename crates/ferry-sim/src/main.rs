//! `ferry-sim`: runs the monday.com-style API simulator on a port until Ctrl-C or SIGTERM.
//!
//! Thin on purpose: it parses flags (a [`Profile`], then overrides) into a [`SimConfig`],
//! binds, prints where it listens, the profile's settings and its ceiling, and hands over
//! to [`ferry_sim::serve`]. Exit codes: 0 stopped by a signal, 1 could not serve, 2 usage
//! error.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_sim::{Budget, Column, Profile, SimConfig};
use tokio::net::TcpListener;

/// A monday.com-style GraphQL API simulator (POST /v2, GET /stats, POST /reset).
///
/// A profile sets every limit; the other flags override it.
/// Durations are milliseconds and accept fractions (e.g. 0.5). Ctrl-C or SIGTERM stops it
/// after the requests in flight. RUST_LOG=ferry_sim=debug logs every request.
#[derive(Debug, Parser)]
#[command(name = "ferry-sim", version, after_help = PROFILES)]
struct Args {
    /// Address to bind; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The API to model: default, gateway-queue, gateway-queue-small, token-bucket,
    /// complexity-budget or poison.
    #[arg(long, default_value = "default")]
    profile: Profile,
    /// Requests processed in parallel [default profile: 4].
    #[arg(long, value_name = "N")]
    slots: Option<usize>,
    /// Fixed cost of a request [40].
    #[arg(long, value_name = "MS", value_parser = millis)]
    per_request_ms: Option<Duration>,
    /// Cost per mutation (alias) [20].
    #[arg(long, value_name = "MS", value_parser = millis)]
    per_mutation_ms: Option<Duration>,
    /// Costlier requests answer 504 after this long [500].
    #[arg(long, value_name = "MS", value_parser = millis)]
    request_timeout_ms: Option<Duration>,
    /// Gateway timeout from arrival, queueing included; the slot stays held [none].
    #[arg(long, value_name = "MS", value_parser = millis)]
    gateway_timeout_ms: Option<Duration>,
    /// Requests per second, then 429; 0 for no limit [10].
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// Make the rate limit a token bucket of this burst, with fractional Retry-After.
    #[arg(long, value_name = "N")]
    bucket_burst: Option<u32>,
    /// Complexity budget points per window [none].
    #[arg(long, value_name = "POINTS")]
    budget_points: Option<u64>,
    /// Complexity budget window [10000].
    #[arg(long, value_name = "MS", value_parser = millis, default_value = "10000")]
    budget_window_ms: Duration,
    /// Complexity points per request [10].
    #[arg(long, value_name = "POINTS", default_value_t = 10)]
    budget_per_request: u64,
    /// Complexity points per mutation [10].
    #[arg(long, value_name = "POINTS", default_value_t = 10)]
    budget_per_mutation: u64,
    /// Probability of a 500 (nothing applied) [0].
    #[arg(long, value_name = "P")]
    error_rate: Option<f64>,
    /// Probability of applying and then dropping the connection [0].
    #[arg(long, value_name = "P")]
    drop_rate: Option<f64>,
    /// Seed of the fault draws [0].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Column value rejected with a GraphQL error; "" disables [INVALID].
    #[arg(long, value_name = "VALUE")]
    poison: Option<String>,
    /// Whether a poisoned row fails its whole request with an error naming no alias.
    #[arg(long, value_name = "BOOL")]
    poison_unnamed: Option<bool>,
    /// Whether values must be shaped as their column's type takes them.
    #[arg(long, value_name = "BOOL")]
    check_values: Option<bool>,
    /// A board column, ID:TYPE[:TITLE] (repeat for each; replaces the default board).
    #[arg(long = "column", value_name = "ID:TYPE[:TITLE]")]
    columns: Vec<Column>,
}

/// The profiles, for `--help` (the crate docs say more; a test checks the ceilings).
const PROFILES: &str = "\
Profiles (ceiling: the best items/s a client told the settings gets):
  default              4 slots, 40 ms + 20 ms per mutation, 10 requests per 1 s window  (184 items/s)
  gateway-queue        8 slots, 80 + 60 ms per mutation, a 1.5 s gateway timeout from
                       arrival; a queued request answers 504 but keeps its slot  (126 items/s)
  gateway-queue-small  the same with 3 slots and a 1.0 s gateway timeout  (45.9 items/s)
  token-bucket         12 slots, a token bucket of 8 requests/s (burst 2), 429 with a
                       fractional Retry-After  (184 items/s)
  complexity-budget    8 slots, 10,000 points per 10 s, 10 per request + 10 per mutation;
                       exhausted: 200 with COMPLEXITY_BUDGET_EXHAUSTED  (94.3 items/s)
  poison               default limits; a poisoned row fails its whole request, naming no
                       alias  (184 items/s without poison)
Every profile but default checks values per column type (date4: {\"date\": ...}, country:
{\"countryCode\": ..., \"countryName\": ...}). Faults for all: --error-rate 0.02 --drop-rate 0.01.";

fn millis(v: &str) -> Result<Duration, String> {
    let ms: f64 = v.parse().map_err(|e| format!("`{v}`: {e}"))?;
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| format!("`{v}`: {e}"))
}

/// `*field = v` when the flag was given.
fn set<T: Copy>(field: &mut T, v: &Option<T>) {
    if let Some(v) = v {
        *field = *v;
    }
}

impl Args {
    /// The profile's settings with the flags' overrides, validated.
    fn config(&self) -> Result<SimConfig, String> {
        let mut c = self.profile.config();
        set(&mut c.slots, &self.slots);
        set(&mut c.per_request, &self.per_request_ms);
        set(&mut c.per_mutation, &self.per_mutation_ms);
        set(&mut c.request_timeout, &self.request_timeout_ms);
        set(&mut c.error_rate, &self.error_rate);
        set(&mut c.drop_rate, &self.drop_rate);
        set(&mut c.seed, &self.seed);
        set(&mut c.poison_unnamed, &self.poison_unnamed);
        set(&mut c.check_values, &self.check_values);
        if let Some(g) = self.gateway_timeout_ms {
            c.gateway_timeout = Some(g);
        }
        if let Some(r) = self.rate_limit {
            c.rate_limit = if r == 0 { u32::MAX } else { r };
        }
        if let Some(b) = self.bucket_burst {
            c.token_bucket_burst = Some(b);
        }
        if let Some(points) = self.budget_points {
            c.budget = Some(Budget {
                points,
                window: self.budget_window_ms,
                per_request: self.budget_per_request,
                per_mutation: self.budget_per_mutation,
            });
        }
        if let Some(p) = &self.poison {
            c.poison_value.clone_from(p);
        }
        if !self.columns.is_empty() {
            c.columns.clone_from(&self.columns);
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry-sim: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ferry_sim=info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ferry-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ferry-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let c = &config;
    println!("ferry-sim listening on {addr}");
    println!("  POST http://{addr}/v2   GET http://{addr}/stats   POST http://{addr}/reset");
    println!("  {}", c.summary());
    let largest = c
        .largest_batch()
        .map_or_else(|| "unbounded".to_owned(), |l| l.to_string());
    let cost = c
        .largest_batch()
        .map_or_else(|| "-".to_owned(), |l| format!("{:?}", c.cost(l)));
    println!(
        "  ceiling {:.1} items/s = min(slots {} × L / cost(L), rate and budget bounds) with L = {largest} mutations, cost(L) = {cost}",
        c.ceiling(),
        c.slots,
    );
    match ferry_sim::serve(config, listener, stop_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or (on Unix) SIGTERM, so that scripts can stop it with `kill`.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<SimConfig, String> {
        let args = Args::try_parse_from(std::iter::once("ferry-sim").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.config()
    }

    #[test]
    fn every_flag_sets_its_field() {
        let argv = [
            "ferry-sim",
            "--listen",
            "127.0.0.1:0",
            "--slots",
            "8",
            "--per-request-ms",
            "2.5",
            "--per-mutation-ms=1",
            "--request-timeout-ms",
            "100",
            "--rate-limit",
            "50",
            "--error-rate",
            "0.1",
            "--drop-rate",
            "0.05",
            "--seed",
            "42",
            "--poison",
            "BAD",
        ];
        let a = Args::try_parse_from(argv).unwrap();
        assert_eq!(a.listen, "127.0.0.1:0");
        let c = a.config().unwrap();
        assert_eq!(c.slots, 8);
        assert_eq!(c.per_request, Duration::from_micros(2500));
        assert_eq!(c.per_mutation, Duration::from_millis(1));
        assert_eq!(c.request_timeout, Duration::from_millis(100));
        assert_eq!((c.rate_limit, c.seed), (50, 42));
        assert_eq!((c.error_rate, c.drop_rate), (0.1, 0.05));
        assert_eq!(c.poison_value, "BAD");
        assert_eq!(parse(&[]).unwrap(), SimConfig::default());
    }

    #[test]
    fn a_profile_is_the_base_and_flags_override_it() {
        let c = parse(&["--profile", "token-bucket", "--rate-limit", "5"]).unwrap();
        assert_eq!(
            (c.profile.as_str(), c.slots, c.rate_limit),
            ("token-bucket", 12, 5)
        );
        assert_eq!(c.token_bucket_burst, Some(2));
        let c = parse(&[
            "--gateway-timeout-ms",
            "900",
            "--bucket-burst",
            "3",
            "--budget-points",
            "500",
            "--poison-unnamed",
            "true",
            "--check-values",
            "true",
            "--column",
            "d:date:Due",
            "--rate-limit",
            "0",
        ])
        .unwrap();
        assert_eq!(c.gateway_timeout, Some(Duration::from_millis(900)));
        assert_eq!(c.token_bucket_burst, Some(3));
        assert_eq!(c.rate_limit, u32::MAX);
        assert_eq!(
            c.budget.map(|b| (b.points, b.window)),
            Some((500, Duration::from_secs(10)))
        );
        assert!(c.poison_unnamed && c.check_values);
        assert_eq!(c.columns.len(), 1);
        let c = parse(&["--profile", "complexity-budget", "--check-values", "false"]).unwrap();
        assert!(!c.check_values && c.budget.is_some());
    }

    #[test]
    fn the_help_states_each_profiles_ceiling() {
        for p in Profile::ALL {
            let ceiling = p.config().ceiling();
            let shown = format!("({} items/s", (ceiling * 10.0).round() / 10.0);
            let line = PROFILES
                .lines()
                .skip_while(|l| !l.starts_with(&format!("  {} ", p.name())))
                .take(3)
                .collect::<String>();
            assert!(line.contains(&shown), "{p}: {shown} not in {line}");
        }
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        assert!(Args::try_parse_from(["ferry-sim", "--help"]).is_err());
        assert!(parse(&["--slots"]).unwrap_err().contains("--slots"));
        assert!(parse(&["--slots", "x"]).unwrap_err().contains("--slots"));
        assert!(parse(&["--slots", "0"]).unwrap_err().contains("`slots`"));
        assert!(parse(&["--per-request-ms", "-1"]).is_err());
        assert!(parse(&["--profile", "nope"])
            .unwrap_err()
            .contains("token-bucket"));
        assert!(parse(&["--column", "x:widget"])
            .unwrap_err()
            .contains("unknown column type"));
        assert!(parse(&["--frobnicate"])
            .unwrap_err()
            .contains("unexpected argument"));
    }
}
