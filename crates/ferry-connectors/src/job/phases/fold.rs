//! The `breadth` stage as a fold: rows in (ticker, date) order, the tables' key order, each
//! counted into its date's figures as it streams (memory: one set of counters per date), the
//! previous close being the previous row of the same ticker. Every date is handed on at the
//! end of the rows (`docs/phases.md`, folded groups).

use std::collections::{HashMap, HashSet};

use ferry_indicators::{BreadthCounts, BreadthRow};

use super::group::{Cell, Fold, Unit};
use super::stage::breadth_cells;

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
                    format!(
                        "`{}` is NULL for {} `{series}`",
                        BREADTH_FOLD_INPUTS[i], self.series_name
                    )
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
            None => self
                .dates
                .entry(date.clone())
                .or_insert(Ok(BreadthCounts::default())),
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
                    Err(reason) => {
                        return Some(Unit::Folded {
                            key,
                            row: Err(reason),
                        })
                    }
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
    use crate::job::phases::group::Group;
    use crate::job::phases::stage::{breadth_row, BREADTH_INPUTS};

    /// The series, the date, then what the fold reads.
    fn columns() -> Vec<String> {
        ["ticker", "date"]
            .into_iter()
            .chain(BREADTH_FOLD_INPUTS)
            .map(str::to_owned)
            .collect()
    }

    /// A row of `columns()`: close, then EMA20/50/200 all `ema`, RSI, MACD and signal.
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
            let columns: Vec<String> = BREADTH_INPUTS.into_iter().map(str::to_owned).collect();
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
        let Unit::Folded {
            key,
            row: Err(reason),
        } = &units[1]
        else {
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
        assert!(e.is_some_and(|e| e.starts_with("the stage reads column `macd_signal`")),);
    }
}
