//! `ferry-sim`: runs the monday.com-style API simulator on a port until Ctrl-C or SIGTERM.
//!
//! Thin on purpose: it parses flags into a [`SimConfig`], binds, prints where it listens and
//! the ceiling, and hands over to [`ferry_sim::serve`]. Exit codes: 0 stopped by a signal,
//! 1 could not serve, 2 usage error.

use std::process::ExitCode;
use std::time::Duration;

use ferry_sim::SimConfig;
use tokio::net::TcpListener;

const USAGE: &str = "\
ferry-sim: a monday.com-style GraphQL API simulator (POST /v2, GET /stats, POST /reset)

Usage: ferry-sim [OPTIONS]

Options (defaults in brackets):
  --listen ADDR              address to bind [127.0.0.1:8080]; port 0 picks a free one
  --slots N                  requests processed in parallel [4]
  --per-request-ms MS        fixed cost of a request [40]
  --per-mutation-ms MS       cost per mutation (alias) [20]
  --request-timeout-ms MS    costlier requests answer 504 after this long [500]
  --rate-limit N             requests per one-second window, then 429 [10]
  --error-rate P             probability of a 500 (nothing applied) [0]
  --drop-rate P              probability of applying and then dropping the connection [0]
  --seed N                   seed of the fault draws [0]
  --poison VALUE             column value rejected with a GraphQL error; \"\" disables [INVALID]
  -h, --help                 this text

Durations accept fractions (e.g. 0.5). Ctrl-C or SIGTERM stops it after the requests in
flight. RUST_LOG=ferry_sim=debug logs every request.";

#[derive(Debug)]
struct Args {
    listen: String,
    config: SimConfig,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut c = SimConfig::default();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--slots" => c.slots = number(&flag, &value()?)?,
            "--per-request-ms" => c.per_request = millis(&flag, &value()?)?,
            "--per-mutation-ms" => c.per_mutation = millis(&flag, &value()?)?,
            "--request-timeout-ms" => c.request_timeout = millis(&flag, &value()?)?,
            "--rate-limit" => c.rate_limit = number(&flag, &value()?)?,
            "--error-rate" => c.error_rate = number(&flag, &value()?)?,
            "--drop-rate" => c.drop_rate = number(&flag, &value()?)?,
            "--seed" => c.seed = number(&flag, &value()?)?,
            "--poison" => c.poison_value = value()?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(Some(Args { listen, config: c }))
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag}: `{v}`: {e}"))
}

fn millis(flag: &str, v: &str) -> Result<Duration, String> {
    let ms: f64 = number(flag, v)?;
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| format!("{flag}: `{v}`: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ferry-sim: {e}\n\n{USAGE}");
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
    let c = &args.config;
    println!("ferry-sim listening on {addr}");
    println!("  POST http://{addr}/v2   GET http://{addr}/stats   POST http://{addr}/reset");
    let largest = c
        .largest_batch()
        .map_or_else(|| "unbounded".to_owned(), |l| l.to_string());
    let cost = c
        .largest_batch()
        .map_or_else(|| "-".to_owned(), |l| format!("{:?}", c.cost(l)));
    println!(
        "  ceiling {:.1} items/s = min(slots {} × L / cost(L), rate {}/s × L) with L = {largest} mutations, cost(L) = {cost}",
        c.ceiling(),
        c.slots,
        c.rate_limit,
    );
    match ferry_sim::serve(args.config, listener, stop_signal()).await {
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

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn every_flag_sets_its_field() {
        let a = parse(&[
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
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.listen, "127.0.0.1:0");
        let c = a.config;
        assert_eq!(c.slots, 8);
        assert_eq!(c.per_request, Duration::from_micros(2500));
        assert_eq!(c.per_mutation, Duration::from_millis(1));
        assert_eq!(c.request_timeout, Duration::from_millis(100));
        assert_eq!((c.rate_limit, c.seed), (50, 42));
        assert_eq!((c.error_rate, c.drop_rate), (0.1, 0.05));
        assert_eq!(c.poison_value, "BAD");
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--slots"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--slots", "x"]).unwrap_err().contains("--slots"));
        assert!(parse(&["--slots", "0"]).unwrap_err().contains("`slots`"));
        assert!(parse(&["--per-request-ms", "-1"]).is_err());
        assert!(parse(&["--frobnicate"])
            .unwrap_err()
            .contains("unknown argument"));
    }
}
