//! Exactness against pandas: generated prices (random walks, a ticker starting late, a flat
//! start, a falling start, a NULL close, a 3-row ticker) go through this crate and through
//! `examples/market-breadth/pandas_breadth.py` (pandas' groupby + ewm + rolling), which
//! compares every value: relative error <= 1e-9, NULLs equal, the same rows.
//!
//! Python: `FERRY_PYTHON`, else the venv `scripts/py-env.sh` makes (`target/py`, or
//! `FERRY_PY_ENV`), made now if it lacks pandas.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_indicators::{breadth, check_closes, compute, BreadthRow};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FERRY_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("FERRY_PY_ENV")
        .map_or_else(|| repo_root().join("target/py"), PathBuf::from)
        .join("bin/python");
    let works = |p: &Path| {
        Command::new(p)
            .args(["-c", "import pandas"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&venv) {
        return venv;
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/py-env.sh"))
        .output()
        .expect("run scripts/py-env.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(works(&made), "{} has no pandas", made.display());
    made
}

/// A small deterministic generator (no seed is shown to users: it only makes test data).
struct Lcg(u64);
impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn date(day: usize) -> String {
    format!("2024-{:02}-{:02}", day / 28 + 1, day % 28 + 1)
}

/// (ticker, first day, closes)
fn tickers() -> Vec<(String, usize, Vec<Option<f64>>)> {
    let mut rng = Lcg(7);
    let days = 300;
    let mut out = Vec::new();
    for t in 0..40 {
        let start = if t % 7 == 3 { 60 } else { 0 };
        let mut price = 20.0 + 200.0 * rng.unit();
        let closes = (start..days)
            .map(|_| {
                price *= 1.0 + (rng.unit() - 0.5) * 0.06;
                Some((price * 100.0).round() / 100.0)
            })
            .collect();
        out.push((format!("T{t:03}"), start, closes));
    }
    let mut flat = vec![Some(50.0); 6];
    flat.extend((0..100).map(|i| Some(50.0 + f64::from(i % 7) - 3.0)));
    out.push(("FLAT".into(), 0, flat));
    let falling: Vec<Option<f64>> = (0..120)
        .map(|i| {
            Some(if i < 8 {
                90.0 - f64::from(i)
            } else {
                82.0 + f64::from(i % 5)
            })
        })
        .collect();
    out.push(("FALL".into(), 0, falling));
    let mut null = vec![Some(10.0); 50];
    null[20] = None;
    out.push(("NULLC".into(), 0, null));
    out.push(("SHORT".into(), 0, vec![Some(1.0), Some(2.0), Some(3.0)]));
    out
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(String::new, |v| format!("{v:?}"))
}

#[test]
fn indicators_and_breadth_equal_pandas() {
    let dir = std::env::temp_dir().join(format!("ferry-indicators-pandas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut prices = String::from("ticker,date,close\n");
    let mut ind = String::from("ticker,date,ema10,ema20,ema50,ema100,ema200,rsi14,macd,macd_signal,macd_hist,bb_mid,bb_upper,bb_lower\n");
    let mut by_date: BTreeMap<String, Vec<BreadthRow>> = BTreeMap::new();
    let mut dead = Vec::new();
    for (ticker, start, closes) in tickers() {
        for (i, c) in closes.iter().enumerate() {
            writeln!(prices, "{ticker},{},{}", date(start + i), opt(*c)).unwrap();
        }
        let closes = match check_closes(&closes, 0, |i| date(start + i)) {
            Ok(c) => c,
            Err(e) => {
                dead.push(format!("{ticker}: {e}"));
                continue;
            }
        };
        for (i, r) in compute(&closes).iter().enumerate() {
            writeln!(
                ind,
                "{ticker},{},{:?},{:?},{:?},{:?},{:?},{},{:?},{:?},{:?},{},{},{}",
                date(start + i),
                r.ema10,
                r.ema20,
                r.ema50,
                r.ema100,
                r.ema200,
                opt(r.rsi14),
                r.macd,
                r.macd_signal,
                r.macd_hist,
                opt(r.bb_mid),
                opt(r.bb_upper),
                opt(r.bb_lower)
            )
            .unwrap();
            by_date
                .entry(date(start + i))
                .or_default()
                .push(BreadthRow {
                    close: closes[i],
                    prev_close: i.checked_sub(1).map(|p| closes[p]),
                    ema20: r.ema20,
                    ema50: r.ema50,
                    ema200: r.ema200,
                    rsi14: r.rsi14,
                    macd: r.macd,
                    macd_signal: r.macd_signal,
                });
        }
    }
    assert_eq!(
        dead,
        [
            "NULLC: close is NULL on row 21 (2024-01-21): a ticker needs a close on every row",
            "SHORT: 3 rows: a ticker needs at least 5 rows of prices"
        ]
    );
    let mut br = String::from("date,tickers,advancers,decliners,pct_above_ema20,pct_above_ema50,pct_above_ema200,pct_rsi_over_70,pct_rsi_under_30,pct_macd_over_signal\n");
    for (d, rows) in &by_date {
        let b = breadth(rows).unwrap();
        writeln!(
            br,
            "{d},{},{},{},{:?},{:?},{:?},{:?},{:?},{:?}",
            b.tickers,
            b.advancers,
            b.decliners,
            b.pct_above_ema20,
            b.pct_above_ema50,
            b.pct_above_ema200,
            b.pct_rsi_over_70,
            b.pct_rsi_under_30,
            b.pct_macd_over_signal
        )
        .unwrap();
    }
    let files = ["prices.csv", "indicators.csv", "breadth.csv"].map(|f| dir.join(f));
    for (f, text) in files.iter().zip([&prices, &ind, &br]) {
        std::fs::write(f, text).unwrap();
    }
    let out = Command::new(python())
        .arg(repo_root().join("examples/market-breadth/pandas_breadth.py"))
        .arg("check-csv")
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("indicators: 11866 rows x 12 values compared, 0 differ"),
        "{stdout}"
    );
    assert!(
        stdout.contains("breadth: 300 rows x 9 values compared, 0 differ"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
