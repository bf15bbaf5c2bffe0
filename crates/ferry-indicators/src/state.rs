//! One ticker's indicators, row by row: [`IndicatorState`] carries everything the next row
//! needs, so a stored state continues exactly where a full recomputation would be.

use std::collections::VecDeque;

use crate::ewm::Ewm;
use crate::Error;

/// A ticker needs at least this many rows of prices; fewer is bad data.
pub const MIN_ROWS: usize = 5;

/// The Bollinger window.
const WINDOW: usize = 20;
/// The EMA spans stored in the `indicators` table.
const SPANS: [u32; 5] = [10, 20, 50, 100, 200];

/// One row's indicators. `None` is SQL `NULL` (undefined: RSI while both Wilder averages
/// are 0, Bollinger during its 19-row warm-up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Indicators {
    /// EMA 10 of close.
    pub ema10: f64,
    /// EMA 20 of close.
    pub ema20: f64,
    /// EMA 50 of close.
    pub ema50: f64,
    /// EMA 100 of close.
    pub ema100: f64,
    /// EMA 200 of close.
    pub ema200: f64,
    /// RSI 14, Wilder smoothing.
    pub rsi14: Option<f64>,
    /// EMA12 − EMA26.
    pub macd: f64,
    /// EMA9 of MACD.
    pub macd_signal: f64,
    /// MACD − signal.
    pub macd_hist: f64,
    /// 20-row mean of close.
    pub bb_mid: Option<f64>,
    /// Middle + 2 × 20-row sample standard deviation.
    pub bb_upper: Option<f64>,
    /// Middle − 2 × 20-row sample standard deviation.
    pub bb_lower: Option<f64>,
}

/// What the next row of a ticker needs: the EMA values, the Wilder averages, the previous
/// close and the last 19 closes. Stored between runs with [`IndicatorState::encode`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndicatorState {
    /// Rows seen so far.
    rows: u64,
    /// EMA 10, 20, 50, 100, 200, then 12 and 26 (MACD's).
    ema: [f64; 7],
    /// EMA9 of MACD.
    signal: f64,
    /// Wilder averages of gains and losses.
    avg_gain: f64,
    avg_loss: f64,
    /// The last close.
    prev_close: f64,
    /// The last up to 19 closes, oldest first.
    window: VecDeque<f64>,
}

/// The smoothing of each of `IndicatorState::ema`, then of the signal and the Wilder averages.
struct Weights {
    ema: [Ewm; 7],
    signal: Ewm,
    wilder: Ewm,
}

fn weights() -> Weights {
    Weights {
        ema: [
            Ewm::span(SPANS[0]),
            Ewm::span(SPANS[1]),
            Ewm::span(SPANS[2]),
            Ewm::span(SPANS[3]),
            Ewm::span(SPANS[4]),
            Ewm::span(12),
            Ewm::span(26),
        ],
        signal: Ewm::span(9),
        wilder: Ewm::alpha(1.0 / 14.0),
    }
}

impl IndicatorState {
    /// A ticker with no rows yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Takes the next close (the ticker's rows in date order) and returns its row.
    pub fn push(&mut self, close: f64) -> Indicators {
        self.push_with(&weights(), close)
    }

    /// Takes every close of `closes` in order and returns their rows.
    pub fn extend(&mut self, closes: &[f64]) -> Vec<Indicators> {
        let w = weights();
        closes.iter().map(|&c| self.push_with(&w, c)).collect()
    }

    fn push_with(&mut self, w: &Weights, close: f64) -> Indicators {
        if self.rows == 0 {
            self.ema = [close; 7];
            // The first delta is NaN: `where` makes its gain and loss 0, the averages' start.
            self.avg_gain = 0.0;
            self.avg_loss = 0.0;
        } else {
            for (e, weight) in self.ema.iter_mut().zip(&w.ema) {
                *e = weight.step(*e, close);
            }
            let delta = close - self.prev_close;
            let gain = if delta > 0.0 { delta } else { 0.0 };
            let loss = if delta < 0.0 { -delta } else { 0.0 };
            self.avg_gain = w.wilder.step(self.avg_gain, gain);
            self.avg_loss = w.wilder.step(self.avg_loss, loss);
        }
        let macd = self.ema[5] - self.ema[6];
        if self.rows > 0 {
            self.signal = w.signal.step(self.signal, macd);
        } else {
            self.signal = macd;
        }
        let rs = self.avg_gain / self.avg_loss;
        let rsi = 100.0 - 100.0 / (1.0 + rs);
        let (bb_mid, bb_upper, bb_lower) = if self.window.len() == WINDOW - 1 {
            let sum: f64 = self.window.iter().sum::<f64>() + close;
            let mean = sum / WINDOW as f64;
            let ss: f64 = self
                .window
                .iter()
                .chain(std::iter::once(&close))
                .map(|x| (x - mean) * (x - mean))
                .sum();
            let std = (ss / (WINDOW - 1) as f64).sqrt();
            (Some(mean), Some(mean + 2.0 * std), Some(mean - 2.0 * std))
        } else {
            (None, None, None)
        };
        self.window.push_back(close);
        if self.window.len() > WINDOW - 1 {
            self.window.pop_front();
        }
        self.prev_close = close;
        self.rows += 1;
        Indicators {
            ema10: self.ema[0],
            ema20: self.ema[1],
            ema50: self.ema[2],
            ema100: self.ema[3],
            ema200: self.ema[4],
            rsi14: (!rsi.is_nan()).then_some(rsi),
            macd,
            macd_signal: self.signal,
            macd_hist: macd - self.signal,
            bb_mid,
            bb_upper,
            bb_lower,
        }
    }

    /// The state as text, exactly: every number as the hex of its bits, so a stored state
    /// continues bit for bit (decimal text could round).
    pub fn encode(&self) -> String {
        let mut out = format!("v1 {}", self.rows);
        let numbers = self
            .ema
            .iter()
            .chain([
                &self.signal,
                &self.avg_gain,
                &self.avg_loss,
                &self.prev_close,
            ])
            .chain(self.window.iter());
        for x in numbers {
            out.push(' ');
            out.push_str(&format!("{:016x}", x.to_bits()));
        }
        out
    }

    /// Reads [`IndicatorState::encode`]'s text.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::BadState(format!("{why} in `{text}`"));
        let mut parts = text.split_ascii_whitespace();
        if parts.next() != Some("v1") {
            return Err(bad("no `v1` version"));
        }
        let rows: u64 = parts
            .next()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| bad("no row count"))?;
        let numbers = parts
            .map(|p| u64::from_str_radix(p, 16).map(f64::from_bits))
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|_| bad("a number that is not 16 hex digits"))?;
        if numbers.len() < 11 || numbers.len() > 11 + WINDOW - 1 {
            return Err(bad("a wrong count of numbers"));
        }
        let mut ema = [0.0; 7];
        ema.copy_from_slice(&numbers[..7]);
        Ok(Self {
            rows,
            ema,
            signal: numbers[7],
            avg_gain: numbers[8],
            avg_loss: numbers[9],
            prev_close: numbers[10],
            window: numbers[11..].iter().copied().collect(),
        })
    }
}

/// Checks a ticker's closes: every one present and finite, and with `prior_rows` (rows a
/// stored state already holds) at least [`MIN_ROWS`] rows. `date_of(i)` names row `i` in
/// the error.
pub fn check_closes(
    closes: &[Option<f64>],
    prior_rows: u64,
    date_of: impl Fn(usize) -> String,
) -> Result<Vec<f64>, Error> {
    let mut out = Vec::with_capacity(closes.len());
    for (i, c) in closes.iter().enumerate() {
        match c {
            Some(x) if x.is_finite() => out.push(*x),
            other => {
                return Err(Error::BadClose {
                    row: i + 1 + prior_rows as usize,
                    date: date_of(i),
                    value: other.map_or_else(|| "NULL".to_owned(), |x| x.to_string()),
                })
            }
        }
    }
    let rows = out.len() + prior_rows as usize;
    if rows < MIN_ROWS {
        return Err(Error::TooFewRows {
            rows,
            min: MIN_ROWS,
        });
    }
    Ok(out)
}

/// A ticker's indicators from its first row: one row per close.
pub fn compute(closes: &[f64]) -> Vec<Indicators> {
    IndicatorState::new().extend(closes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn walk(seed: u64, n: usize) -> Vec<f64> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut price = 100.0;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let step = ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 4.0;
                price = (price + step).max(1.0);
                (price * 100.0).round() / 100.0
            })
            .collect()
    }

    #[test]
    fn first_row_emas_are_the_close_and_rsi_and_bollinger_are_null() {
        let rows = compute(&[10.0, 11.0, 10.5]);
        assert_eq!(rows[0].ema10, 10.0);
        assert_eq!(rows[0].ema200, 10.0);
        assert_eq!(rows[0].macd, 0.0);
        assert_eq!(rows[0].macd_signal, 0.0);
        assert_eq!(rows[0].rsi14, None);
        assert_eq!(rows[0].bb_mid, None);
        // A gain and no loss yet: RSI 100.
        assert_eq!(rows[1].rsi14, Some(100.0));
        assert!(rows[2].rsi14.unwrap() < 100.0);
    }

    #[test]
    fn a_flat_start_keeps_rsi_null_until_the_first_move() {
        let rows = compute(&[5.0, 5.0, 5.0, 4.0]);
        assert_eq!(rows[1].rsi14, None);
        assert_eq!(rows[2].rsi14, None);
        assert_eq!(rows[3].rsi14, Some(0.0));
    }

    #[test]
    fn bollinger_starts_on_row_20_with_the_sample_deviation() {
        let closes: Vec<f64> = (1..=20).map(f64::from).collect();
        let rows = compute(&closes);
        assert_eq!(rows[18].bb_mid, None);
        assert_eq!(rows[19].bb_mid, Some(10.5));
        // Sample variance of 1..=20 is 35.
        let std = 35f64.sqrt();
        assert!((rows[19].bb_upper.unwrap() - (10.5 + 2.0 * std)).abs() < 1e-12);
        assert!((rows[19].bb_lower.unwrap() - (10.5 - 2.0 * std)).abs() < 1e-12);
    }

    #[test]
    fn bad_closes_and_short_tickers_are_refused_with_the_reason() {
        let e = check_closes(&[Some(1.0), None, Some(2.0)], 0, |i| format!("d{i}"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "close is NULL on row 2 (d1): a ticker needs a close on every row"
        );
        let e = check_closes(&[Some(1.0); 3], 0, |i| format!("d{i}"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "3 rows: a ticker needs at least 5 rows of prices"
        );
        // Two new rows after five stored ones are fine.
        assert!(check_closes(&[Some(1.0); 2], 5, |i| format!("d{i}")).is_ok());
    }

    #[test]
    fn a_state_survives_encoding_bit_for_bit() {
        let mut s = IndicatorState::new();
        s.extend(&walk(3, 37));
        let back = IndicatorState::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        assert!(IndicatorState::decode("v1 x").is_err());
        assert!(IndicatorState::decode("v2 1").is_err());
    }

    proptest! {
        /// Continuing from a stored (encoded) state gives exactly the rows of a full
        /// recomputation.
        #[test]
        fn continuing_from_a_stored_state_equals_a_full_recomputation(
            seed in any::<u64>(), n in 1usize..400, cut in 0usize..400,
        ) {
            let closes = walk(seed, n);
            let cut = cut.min(n);
            let full = compute(&closes);
            let mut first = IndicatorState::new();
            let mut rows = first.extend(&closes[..cut]);
            let mut resumed = IndicatorState::decode(&first.encode()).unwrap();
            rows.extend(resumed.extend(&closes[cut..]));
            prop_assert_eq!(rows, full);
        }
    }
}
