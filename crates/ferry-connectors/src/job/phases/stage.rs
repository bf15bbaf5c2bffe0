//! The phases' built-in CPU stages: `indicators` (a group = one ticker's rows in date
//! order -> one row of indicators per new date, and the ticker's new state) and `breadth`
//! (a group = one date's rows of all tickers -> one breadth row). Pure functions of a group
//! and, for indicators, its stored state; the handler (`handler`) runs them on the blocking
//! pool and writes their rows.
//!
//! `breadth` also folds (`fold`): with `source.series = "ticker"` the rows come in the
//! tables' key order (ticker, date) and each is counted into its date's figures as it
//! streams.

use ferry_indicators::{breadth, check_closes, Breadth, BreadthRow, IndicatorState, Indicators};

use super::group::{Cell, Group};

/// Which stage, with what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageKind {
    /// Per-ticker indicators (`docs/indicators.md`).
    Indicators {
        /// The date column of the source (default `date`).
        date: String,
        /// The close column (default `close`).
        close: String,
        /// Where each ticker's state is kept between runs (`None`: no incremental runs).
        state_table: Option<String>,
    },
    /// Per-date breadth.
    Breadth,
}

/// The `indicators` table's columns, in the rows' order.
pub(crate) const INDICATOR_COLUMNS: [&str; 14] = [
    "ticker",
    "date",
    "ema10",
    "ema20",
    "ema50",
    "ema100",
    "ema200",
    "rsi14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_mid",
    "bb_upper",
    "bb_lower",
];

/// The `breadth` table's columns.
pub(crate) const BREADTH_COLUMNS: [&str; 10] = [
    "date",
    "tickers",
    "advancers",
    "decliners",
    "pct_above_ema20",
    "pct_above_ema50",
    "pct_above_ema200",
    "pct_rsi_over_70",
    "pct_rsi_under_30",
    "pct_macd_over_signal",
];

/// The columns a `breadth` group must have.
pub(crate) const BREADTH_INPUTS: [&str; 8] = [
    "close",
    "prev_close",
    "ema20",
    "ema50",
    "ema200",
    "rsi14",
    "macd",
    "macd_signal",
];

/// The state table's columns.
pub(crate) const STATE_COLUMNS: [&str; 3] = ["ticker", "last_date", "state"];

impl StageKind {
    /// The output columns and key.
    pub(crate) fn output(&self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            StageKind::Indicators { .. } => (&INDICATOR_COLUMNS, &["ticker", "date"]),
            StageKind::Breadth => (&BREADTH_COLUMNS, &["date"]),
        }
    }

    /// Whether the stage can fold a series-ordered source (`source.series`).
    pub(crate) fn folds(&self) -> bool {
        matches!(self, StageKind::Breadth)
    }

    /// The source columns the stage reads (besides the group key).
    pub(crate) fn inputs(&self) -> Vec<String> {
        match self {
            StageKind::Indicators { date, close, .. } => vec![date.clone(), close.clone()],
            StageKind::Breadth => BREADTH_INPUTS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// What one group became.
#[derive(Debug, Default)]
pub(crate) struct Computed {
    /// Output rows.
    pub(crate) rows: Vec<Vec<Cell>>,
    /// The group's new state row, if the stage keeps one.
    pub(crate) state: Option<Vec<Cell>>,
}

/// A ticker's stored state: its last computed date and the state after it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The last date computed.
    pub(crate) last_date: String,
    /// The state after it.
    pub(crate) state: IndicatorState,
}

fn opt(x: Option<f64>) -> Cell {
    x.map_or(Cell::Null, Cell::Real)
}

fn indicator_row(ticker: &str, date: String, r: &Indicators) -> Vec<Cell> {
    vec![
        Cell::Text(ticker.to_owned()),
        Cell::Text(date),
        Cell::Real(r.ema10),
        Cell::Real(r.ema20),
        Cell::Real(r.ema50),
        Cell::Real(r.ema100),
        Cell::Real(r.ema200),
        opt(r.rsi14),
        Cell::Real(r.macd),
        Cell::Real(r.macd_signal),
        Cell::Real(r.macd_hist),
        opt(r.bb_mid),
        opt(r.bb_upper),
        opt(r.bb_lower),
    ]
}

/// One ticker: its rows after `stored`'s last date continue `stored`'s state. `Err` is the
/// reason the ticker is dead-lettered.
pub(crate) fn indicators(
    group: &Group,
    date_col: &str,
    close_col: &str,
    stored: Option<&Stored>,
    keep_state: bool,
) -> Result<Computed, String> {
    let (Some(d), Some(c)) = (group.column(date_col), group.column(close_col)) else {
        return Err(format!(
            "the source has no `{date_col}` or `{close_col}` column"
        ));
    };
    let new_rows: Vec<&Vec<Cell>> = group
        .rows
        .iter()
        .filter(|r| stored.is_none_or(|s| r[d].text() > s.last_date))
        .collect();
    if new_rows.is_empty() {
        return Ok(Computed::default());
    }
    let closes: Vec<Option<f64>> = new_rows.iter().map(|r| r[c].number()).collect();
    let mut state = stored.map_or_else(IndicatorState::new, |s| s.state.clone());
    let closes = check_closes(&closes, state.rows(), |i| new_rows[i][d].text())
        .map_err(|e| e.to_string())?;
    let out = state.extend(&closes);
    let rows: Vec<Vec<Cell>> = new_rows
        .iter()
        .zip(&out)
        .map(|(r, ind)| indicator_row(&group.key, r[d].text(), ind))
        .collect();
    let last_date = new_rows.last().map(|r| r[d].text()).unwrap_or_default();
    Ok(Computed {
        rows,
        state: keep_state.then(|| {
            vec![
                Cell::Text(group.key.clone()),
                Cell::Text(last_date),
                Cell::Text(state.encode()),
            ]
        }),
    })
}

/// One date's breadth row.
pub(crate) fn breadth_row(group: &Group) -> Result<Computed, String> {
    let mut idx = [0usize; 8];
    for (slot, name) in idx.iter_mut().zip(BREADTH_INPUTS) {
        *slot = group
            .column(name)
            .ok_or_else(|| format!("the source has no `{name}` column"))?;
    }
    let mut rows = Vec::with_capacity(group.rows.len());
    for r in &group.rows {
        let need = |i: usize| {
            r[idx[i]]
                .number()
                .ok_or_else(|| format!("`{}` is NULL for a ticker", BREADTH_INPUTS[i]))
        };
        rows.push(BreadthRow {
            close: need(0)?,
            prev_close: r[idx[1]].number(),
            ema20: need(2)?,
            ema50: need(3)?,
            ema200: need(4)?,
            rsi14: r[idx[5]].number(),
            macd: need(6)?,
            macd_signal: need(7)?,
        });
    }
    let Some(b) = breadth(&rows) else {
        return Ok(Computed::default());
    };
    Ok(Computed {
        rows: vec![breadth_cells(group.key.clone(), &b)],
        state: None,
    })
}

/// A `breadth` table row.
pub(crate) fn breadth_cells(date: String, b: &Breadth) -> Vec<Cell> {
    let count = |n: u64| Cell::Int(i64::try_from(n).unwrap_or(i64::MAX));
    vec![
        Cell::Text(date),
        count(b.tickers),
        count(b.advancers),
        count(b.decliners),
        Cell::Real(b.pct_above_ema20),
        Cell::Real(b.pct_above_ema50),
        Cell::Real(b.pct_above_ema200),
        Cell::Real(b.pct_rsi_over_70),
        Cell::Real(b.pct_rsi_under_30),
        Cell::Real(b.pct_macd_over_signal),
    ]
}
