//! Technical indicators and market breadth, defined as pandas computes them, so that a user
//! can check every value with a few lines of pandas (`docs/indicators.md` has them).
//!
//! Per ticker, from its closes ordered by date ([`compute`], or row by row with an
//! [`IndicatorState`]):
//!
//! - EMA 10/20/50/100/200 = `close.ewm(span=n, adjust=False).mean()`, defined from the first
//!   row;
//! - RSI 14 = `100 - 100 / (1 + avg_gain / avg_loss)` with Wilder smoothing:
//!   `delta = close.diff()`, `gain = delta.where(delta > 0, 0.0)`,
//!   `loss = -delta.where(delta < 0, 0.0)`, each averaged with
//!   `ewm(alpha=1/14, adjust=False).mean()`. The first row's delta is NaN, so its gain and
//!   loss are 0 and RSI is NULL (0/0) there, and wherever both averages are still 0 (a flat
//!   start); an average loss of 0 with a gain gives 100;
//! - MACD = EMA12 − EMA26, signal = `macd.ewm(span=9, adjust=False).mean()`,
//!   histogram = MACD − signal;
//! - Bollinger middle = `close.rolling(20).mean()`, upper/lower = middle ± 2 ×
//!   `close.rolling(20).std()` (ddof 1); NULL for the first 19 rows.
//!
//! The state ([`IndicatorState`]) holds what the next row needs: the EMA values, the Wilder
//! averages, the previous close and the last 19 closes. Continuing from a stored state gives
//! bit for bit the values of a full recomputation (a property test says so), which is what
//! makes incremental runs exact.
//!
//! Per date, [`breadth`] counts the tickers, advancers and decliners (a ticker's first row is
//! neither) and the percentages above EMA20/50/200, with RSI over 70 / under 30 and with MACD
//! over its signal; [`BreadthCounts`] folds the same counts one row at a time, for rows that
//! arrive ordered by ticker rather than by date.
//!
//! A ticker whose data is bad ([`check_closes`]: a NULL or non-finite close, fewer than
//! [`MIN_ROWS`] rows) gets an [`Error`] naming the reason and no rows.

mod breadth;
mod error;
mod ewm;
mod state;

pub use breadth::{breadth, Breadth, BreadthCounts, BreadthRow};
pub use error::Error;
pub use state::{check_closes, compute, IndicatorState, Indicators, MIN_ROWS};
