//! Market breadth: one date's figures over the tickers that have indicators on it.

/// One ticker on one date: what breadth reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreadthRow {
    /// The close.
    pub close: f64,
    /// The ticker's previous close (`None` on its first row: neither advancer nor decliner).
    pub prev_close: Option<f64>,
    /// EMA 20.
    pub ema20: f64,
    /// EMA 50.
    pub ema50: f64,
    /// EMA 200.
    pub ema200: f64,
    /// RSI 14 (`None`: undefined, counts in neither RSI figure).
    pub rsi14: Option<f64>,
    /// MACD.
    pub macd: f64,
    /// MACD's signal.
    pub macd_signal: f64,
}

/// One date's breadth. Percentages are 0-100 of `tickers`, computed as pandas'
/// `(condition).mean() * 100`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breadth {
    /// Tickers with indicators on the date.
    pub tickers: u64,
    /// Tickers whose close is above their previous close.
    pub advancers: u64,
    /// Tickers whose close is below their previous close.
    pub decliners: u64,
    /// % with close above EMA 20.
    pub pct_above_ema20: f64,
    /// % with close above EMA 50.
    pub pct_above_ema50: f64,
    /// % with close above EMA 200.
    pub pct_above_ema200: f64,
    /// % with RSI over 70.
    pub pct_rsi_over_70: f64,
    /// % with RSI under 30.
    pub pct_rsi_under_30: f64,
    /// % with MACD over its signal.
    pub pct_macd_over_signal: f64,
}

/// One date's counts, folded one ticker's row at a time: what [`breadth`] computes, for a
/// caller that sees a date's rows spread over a stream (ordered by ticker, not by date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BreadthCounts {
    tickers: u64,
    advancers: u64,
    decliners: u64,
    above_ema20: u64,
    above_ema50: u64,
    above_ema200: u64,
    rsi_over_70: u64,
    rsi_under_30: u64,
    macd_over_signal: u64,
}

impl BreadthCounts {
    /// Counts one ticker's row.
    pub fn add(&mut self, r: &BreadthRow) {
        let one = |c: bool| u64::from(c);
        self.tickers += 1;
        self.advancers += one(r.prev_close.is_some_and(|p| r.close > p));
        self.decliners += one(r.prev_close.is_some_and(|p| r.close < p));
        self.above_ema20 += one(r.close > r.ema20);
        self.above_ema50 += one(r.close > r.ema50);
        self.above_ema200 += one(r.close > r.ema200);
        self.rsi_over_70 += one(r.rsi14.is_some_and(|x| x > 70.0));
        self.rsi_under_30 += one(r.rsi14.is_some_and(|x| x < 30.0));
        self.macd_over_signal += one(r.macd > r.macd_signal);
    }

    /// The date's breadth; `None` if no row was counted.
    pub fn finish(&self) -> Option<Breadth> {
        if self.tickers == 0 {
            return None;
        }
        let n = self.tickers as f64;
        let pct = |k: u64| k as f64 / n * 100.0;
        Some(Breadth {
            tickers: self.tickers,
            advancers: self.advancers,
            decliners: self.decliners,
            pct_above_ema20: pct(self.above_ema20),
            pct_above_ema50: pct(self.above_ema50),
            pct_above_ema200: pct(self.above_ema200),
            pct_rsi_over_70: pct(self.rsi_over_70),
            pct_rsi_under_30: pct(self.rsi_under_30),
            pct_macd_over_signal: pct(self.macd_over_signal),
        })
    }
}

/// One date's breadth from its tickers' rows; `None` for no rows.
pub fn breadth(rows: &[BreadthRow]) -> Option<Breadth> {
    let mut counts = BreadthCounts::default();
    for r in rows {
        counts.add(r);
    }
    counts.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(close: f64, prev: Option<f64>, rsi: Option<f64>) -> BreadthRow {
        BreadthRow {
            close,
            prev_close: prev,
            ema20: 10.0,
            ema50: 20.0,
            ema200: 5.0,
            rsi14: rsi,
            macd: close,
            macd_signal: 11.0,
        }
    }

    #[test]
    fn counts_and_percentages() {
        let rows = [
            row(12.0, Some(11.0), Some(75.0)),
            row(9.0, Some(9.5), Some(25.0)),
            row(11.0, None, None),
            row(8.0, Some(8.0), Some(50.0)),
        ];
        let b = breadth(&rows).unwrap();
        assert_eq!((b.tickers, b.advancers, b.decliners), (4, 1, 1));
        assert_eq!(b.pct_above_ema20, 50.0);
        assert_eq!(b.pct_above_ema50, 0.0);
        assert_eq!(b.pct_above_ema200, 100.0);
        assert_eq!(b.pct_rsi_over_70, 25.0);
        assert_eq!(b.pct_rsi_under_30, 25.0);
        assert_eq!(b.pct_macd_over_signal, 25.0);
        assert_eq!(breadth(&[]), None);
    }

    #[test]
    fn counts_folded_in_any_order_give_the_same_breadth() {
        let rows = [
            row(12.0, Some(11.0), Some(75.0)),
            row(9.0, Some(9.5), Some(25.0)),
            row(11.0, None, None),
        ];
        let mut counts = BreadthCounts::default();
        for r in rows.iter().rev() {
            counts.add(r);
        }
        assert_eq!(counts.finish(), breadth(&rows));
        assert_eq!(BreadthCounts::default().finish(), None);
    }
}
