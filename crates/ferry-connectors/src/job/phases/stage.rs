//! The phases' built-in CPU stages: `indicators` (a group = one ticker's rows in date
//! order -> one row of indicators per new date, and the ticker's new state) and `breadth`
//! (a group = one date's rows of all tickers -> one breadth row). Pure functions of a group
//! and, for indicators, its stored state; the handler (`handler`) runs them on the blocking
//! pool and writes their rows.
//!
//! `breadth` also folds ([`BreadthFold`]): with `source.series = "ticker"` the rows come in
//! the tables' key order (ticker, date), each is counted into its date's figures as it
//! streams, and the previous close is the previous row of the same ticker.

use std::collections::{HashMap, HashSet};

use ferry_indicators::{
    breadth, check_closes, Breadth, BreadthCounts, BreadthRow, IndicatorState, Indicators,
};

use super::group::{Cell, Fold, Group, Unit};

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

/// The columns a folded `breadth` reads besides the series and the date: the previous close
/// is the previous row of the same series.
pub(crate) const BREADTH_FOLD_INPUTS: [&str; 7] = [
    "close",
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
fn breadth_cells(date: String, b: &Breadth) -> Vec<Cell> {
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

/// Takes a cell's text out of a row that is done with.
fn take_text(cell: &mut Cell) -> String {
    match std::mem::replace(cell, Cell::Null) {
        Cell::Text(s) => s,
        other => other.text(),
    }
}

/// `breadth` over rows in (series, date) order: each row counts in its date's figures as it
/// arrives, so memory is one set of counters per date, and the previous close is the
/// previous row of the same series. A date with a row the figures cannot use (a NULL close
/// or EMA) is dead-lettered with the reason, like a date group with that row.
pub(crate) struct BreadthFold {
    series_name: String,
    group_by: String,
    series: usize,
    date: usize,
    inputs: [usize; 7],
    /// Series already passed (a series must be together).
    seen: HashSet<String>,
    /// The last row: its series, date and close.
    last: Option<(String, String, Option<f64>)>,
    dates: HashMap<String, Result<BreadthCounts, String>>,
}

impl BreadthFold {
    /// Finds the columns the fold reads in the query's `columns`.
    pub(crate) fn new(columns: &[String], series: &str, group_by: &str) -> Result<Self, String> {
        let find = |name: &str| {
            columns.iter().position(|c| c == name).ok_or_else(|| {
                format!(
                    "the stage reads column `{name}`, which the query does not return; its columns: {}",
                    columns.join(", ")
                )
            })
        };
        let mut inputs = [0usize; 7];
        for (slot, name) in inputs.iter_mut().zip(BREADTH_FOLD_INPUTS) {
            *slot = find(name)?;
        }
        Ok(Self {
            series_name: series.to_owned(),
            group_by: group_by.to_owned(),
            series: find(series)?,
            date: find(group_by)?,
            inputs,
            seen: HashSet::new(),
            last: None,
            dates: HashMap::new(),
        })
    }
}

impl Fold for BreadthFold {
    fn push(&mut self, mut row: Vec<Cell>) -> Result<(), String> {
        let series = take_text(&mut row[self.series]);
        let date = take_text(&mut row[self.date]);
        let prev_close = match self.last.take() {
            Some((s, d, close)) if s == series => {
                if date <= d {
                    return Err(format!(
                        "rows of {} `{series}` are not in {} order (`{date}` after `{d}`): the query must ORDER BY {}, {}",
                        self.series_name, self.group_by, self.series_name, self.group_by
                    ));
                }
                close
            }
            Some((s, ..)) => {
                self.seen.insert(s);
                if self.seen.contains(&series) {
                    return Err(format!(
                        "rows of {} `{series}` are not together: the query must ORDER BY {}, {}",
                        self.series_name, self.series_name, self.group_by
                    ));
                }
                None
            }
            None => None,
        };
        let value = |i: usize| row[self.inputs[i]].number();
        let close = value(0);
        let counted = (|| {
            let need = |i: usize| {
                value(i).ok_or_else(|| {
                    format!("`{}` is NULL for {} `{series}`", BREADTH_FOLD_INPUTS[i], self.series_name)
                })
            };
            Ok::<_, String>(BreadthRow {
                close: need(0)?,
                prev_close,
                ema20: need(1)?,
                ema50: need(2)?,
                ema200: need(3)?,
                rsi14: value(4),
                macd: need(5)?,
                macd_signal: need(6)?,
            })
        })();
        let slot = match self.dates.get_mut(&date) {
            Some(slot) => slot,
            None => self.dates.entry(date.clone()).or_insert(Ok(BreadthCounts::default())),
        };
        match (slot.as_mut(), counted) {
            (Ok(counts), Ok(r)) => counts.add(&r),
            (Ok(_), Err(reason)) => *slot = Err(reason),
            (Err(_), _) => {}
        }
        self.last = Some((series, date, close));
        Ok(())
    }

    fn finish(self: Box<Self>) -> Vec<Unit> {
        let mut dates: Vec<(String, Result<BreadthCounts, String>)> =
            self.dates.into_iter().collect();
        dates.sort_by(|a, b| a.0.cmp(&b.0));
        dates
            .into_iter()
            .filter_map(|(key, counts)| {
                let row = match counts {
                    Ok(c) => breadth_cells(key.clone(), &c.finish()?),
                    Err(reason) => return Some(Unit::Folded { key, row: Err(reason) }),
                };
                Some(Unit::Folded { key, row: Ok(row) })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const COLUMNS: [&str; 9] = [
        "ticker",
        "date",
        "close",
        "ema20",
        "ema50",
        "ema200",
        "rsi14",
        "macd",
        "macd_signal",
    ];

    fn columns() -> Vec<String> {
        COLUMNS.iter().map(|c| (*c).to_owned()).collect()
    }

    /// A row of `COLUMNS`: close, then EMA20/50/200 all `ema`, RSI, MACD and signal.
    fn row(ticker: &str, date: &str, close: f64, ema: f64, rsi: Option<f64>) -> Vec<Cell> {
        vec![
            Cell::Text(ticker.into()),
            Cell::Text(date.into()),
            Cell::Real(close),
            Cell::Real(ema),
            Cell::Real(ema),
            Cell::Real(ema),
            rsi.map_or(Cell::Null, Cell::Real),
            Cell::Real(close),
            Cell::Real(ema),
        ]
    }

    fn folded(rows: Vec<Vec<Cell>>) -> Result<Vec<Unit>, String> {
        let mut fold = Box::new(BreadthFold::new(&columns(), "ticker", "date")?);
        for r in rows {
            fold.push(r)?;
        }
        Ok(fold.finish())
    }

    #[test]
    fn folding_by_ticker_gives_the_rows_of_date_groups_with_previous_closes() {
        let by_ticker = vec![
            row("A", "d1", 10.0, 9.0, None),
            row("A", "d2", 11.0, 12.0, Some(75.0)),
            row("A", "d3", 10.5, 10.0, Some(20.0)),
            row("B", "d2", 5.0, 4.0, None),
            row("B", "d3", 5.0, 6.0, Some(50.0)),
        ];
        let units = folded(by_ticker).unwrap();
        let keys: Vec<&str> = units.iter().map(Unit::key).collect();
        assert_eq!(keys, ["d1", "d2", "d3"]);
        // The same dates as groups of rows with their previous closes (`breadth_row`).
        let group = |key: &str, rows: Vec<(f64, Option<f64>, f64, Option<f64>)>| {
            let columns: Vec<String> = [
                "close",
                "prev_close",
                "ema20",
                "ema50",
                "ema200",
                "rsi14",
                "macd",
                "macd_signal",
            ]
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
            let g = Group {
                key: key.into(),
                columns: Arc::new(columns),
                rows: rows
                    .into_iter()
                    .map(|(close, prev, ema, rsi)| {
                        vec![
                            Cell::Real(close),
                            prev.map_or(Cell::Null, Cell::Real),
                            Cell::Real(ema),
                            Cell::Real(ema),
                            Cell::Real(ema),
                            rsi.map_or(Cell::Null, Cell::Real),
                            Cell::Real(close),
                            Cell::Real(ema),
                        ]
                    })
                    .collect(),
            };
            breadth_row(&g).unwrap().rows.remove(0)
        };
        let want = [
            group("d1", vec![(10.0, None, 9.0, None)]),
            group(
                "d2",
                vec![(11.0, Some(10.0), 12.0, Some(75.0)), (5.0, None, 4.0, None)],
            ),
            group(
                "d3",
                vec![
                    (10.5, Some(11.0), 10.0, Some(20.0)),
                    (5.0, Some(5.0), 6.0, Some(50.0)),
                ],
            ),
        ];
        for (u, w) in units.iter().zip(want) {
            let Unit::Folded { row: Ok(row), .. } = u else {
                panic!("{u:?}");
            };
            assert_eq!(row, &w);
        }
        // d3: A declined (10.5 < 11), B unchanged; d2: A advanced, B has no previous close.
        let Unit::Folded { row: Ok(d3), .. } = &units[2] else {
            panic!()
        };
        assert_eq!(d3[1..4], [Cell::Int(2), Cell::Int(0), Cell::Int(1)]);
    }

    #[test]
    fn a_null_value_dead_letters_its_date_only() {
        let mut bad = row("B", "d2", 5.0, 4.0, None);
        bad[3] = Cell::Null;
        let units = folded(vec![
            row("A", "d1", 10.0, 9.0, None),
            row("A", "d2", 11.0, 12.0, None),
            row("B", "d1", 5.0, 4.0, None),
            bad,
        ])
        .unwrap();
        assert!(matches!(&units[0], Unit::Folded { row: Ok(_), .. }));
        let Unit::Folded { key, row: Err(reason) } = &units[1] else {
            panic!("{:?}", units[1]);
        };
        assert_eq!(key, "d2");
        assert_eq!(reason, "`ema20` is NULL for ticker `B`");
    }

    #[test]
    fn rows_out_of_ticker_date_order_stop_the_fold() {
        let e = folded(vec![
            row("A", "d2", 10.0, 9.0, None),
            row("A", "d1", 10.0, 9.0, None),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            "rows of ticker `A` are not in date order (`d1` after `d2`): the query must ORDER BY ticker, date"
        );
        let e = folded(vec![
            row("A", "d1", 10.0, 9.0, None),
            row("B", "d1", 10.0, 9.0, None),
            row("A", "d2", 10.0, 9.0, None),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            "rows of ticker `A` are not together: the query must ORDER BY ticker, date"
        );
        let e = BreadthFold::new(&columns()[..8], "ticker", "date").err();
        assert!(
            e.is_some_and(|e| e.starts_with("the stage reads column `macd_signal`")),
        );
    }
}
