//! The `indicators` and `breadth` stage types of `[[stage]]` blocks: the same computations as
//! the phased jobs' stages (`ferry-indicators`), on JSON payloads that each hold a group of
//! rows, e.g. from a SQL source that aggregates them:
//! `SELECT ticker, json_group_array(json_object('date', date, 'close', close)) AS rows ...
//! GROUP BY ticker` (SQLite; `json_agg` on PostgreSQL).
//!
//! - `indicators`: `{ticker, rows: [{date, close}, ...]}` (rows in date order; `rows` may be
//!   the JSON array or text holding it) -> one payload per row: `{ticker, date, ema10, ...,
//!   bb_lower}`. A NULL close or fewer than 5 rows dead-letters the ticker with the reason.
//! - `breadth`: `{date, rows: [{close, prev_close, ema20, ema50, ema200, rsi14, macd,
//!   macd_signal}, ...]}` -> one payload `{date, tickers, advancers, ...}`.
//!
//! Values travel as JSON numbers here; the phased jobs' stages read and write typed rows and
//! keep each ticker's state for incremental runs (`docs/indicators.md`).

use serde_json::{json, Map, Value};

use super::api::{Stage, StageError};
use ferry_indicators::{breadth, check_closes, compute, BreadthRow};

/// Settings of an `indicators` or `breadth` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStageConfig {
    /// The payload field holding the group's key (`ticker` / `date` by default).
    pub group: String,
    /// The payload field holding the rows (`rows` by default).
    pub rows: String,
}

fn rows_of<'a>(
    payload: &'a Value,
    cfg: &GroupStageConfig,
) -> Result<(String, std::borrow::Cow<'a, [Value]>), StageError> {
    let group = match payload.get(&cfg.group) {
        Some(Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => return Err(StageError::new(format!("no `{}` field", cfg.group))),
    };
    let rows = match payload.get(&cfg.rows) {
        Some(Value::Array(a)) => std::borrow::Cow::Borrowed(a.as_slice()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(a)) => std::borrow::Cow::Owned(a),
            _ => {
                return Err(StageError::new(format!(
                    "`{}` is text but not a JSON array",
                    cfg.rows
                )))
            }
        },
        _ => {
            return Err(StageError::new(format!(
                "no `{}` field with an array of rows",
                cfg.rows
            )))
        }
    };
    Ok((group, rows))
}

fn num(row: &Value, field: &str) -> Option<f64> {
    match row.get(field) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The `indicators` stage.
#[derive(Debug, Clone)]
pub struct IndicatorsStage(pub GroupStageConfig);

impl Stage for IndicatorsStage {
    fn process(&self, payload: &Value) -> Result<Vec<Value>, StageError> {
        let (ticker, rows) = rows_of(payload, &self.0)?;
        let date = |i: usize| match rows[i].get("date") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        let closes: Vec<Option<f64>> = rows.iter().map(|r| num(r, "close")).collect();
        let closes = check_closes(&closes, 0, date).map_err(|e| StageError::new(e.to_string()))?;
        Ok(compute(&closes)
            .iter()
            .enumerate()
            .map(|(i, r)| {
                json!({
                    &self.0.group: ticker,
                    "date": date(i),
                    "ema10": r.ema10, "ema20": r.ema20, "ema50": r.ema50,
                    "ema100": r.ema100, "ema200": r.ema200, "rsi14": r.rsi14,
                    "macd": r.macd, "macd_signal": r.macd_signal, "macd_hist": r.macd_hist,
                    "bb_mid": r.bb_mid, "bb_upper": r.bb_upper, "bb_lower": r.bb_lower,
                })
            })
            .collect())
    }
}

/// The `breadth` stage.
#[derive(Debug, Clone)]
pub struct BreadthStage(pub GroupStageConfig);

impl Stage for BreadthStage {
    fn process(&self, payload: &Value) -> Result<Vec<Value>, StageError> {
        let (date, rows) = rows_of(payload, &self.0)?;
        let need = |r: &Value, f: &str| {
            num(r, f).ok_or_else(|| StageError::new(format!("a row has no number `{f}`")))
        };
        let mut input = Vec::with_capacity(rows.len());
        for r in rows.iter() {
            input.push(BreadthRow {
                close: need(r, "close")?,
                prev_close: num(r, "prev_close"),
                ema20: need(r, "ema20")?,
                ema50: need(r, "ema50")?,
                ema200: need(r, "ema200")?,
                rsi14: num(r, "rsi14"),
                macd: need(r, "macd")?,
                macd_signal: need(r, "macd_signal")?,
            });
        }
        let Some(b) = breadth(&input) else {
            return Ok(Vec::new());
        };
        let mut out = Map::new();
        out.insert(self.0.group.clone(), Value::String(date));
        for (k, v) in [
            ("tickers", json!(b.tickers)),
            ("advancers", json!(b.advancers)),
            ("decliners", json!(b.decliners)),
            ("pct_above_ema20", json!(b.pct_above_ema20)),
            ("pct_above_ema50", json!(b.pct_above_ema50)),
            ("pct_above_ema200", json!(b.pct_above_ema200)),
            ("pct_rsi_over_70", json!(b.pct_rsi_over_70)),
            ("pct_rsi_under_30", json!(b.pct_rsi_under_30)),
            ("pct_macd_over_signal", json!(b.pct_macd_over_signal)),
        ] {
            out.insert(k.to_owned(), v);
        }
        Ok(vec![Value::Object(out)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(group: &str) -> GroupStageConfig {
        GroupStageConfig {
            group: group.into(),
            rows: "rows".into(),
        }
    }

    #[test]
    fn indicators_of_a_group_payload_and_bad_tickers() {
        let rows: Vec<Value> = (1..=25)
            .map(|i| json!({"date": format!("2024-01-{i:02}"), "close": 10.0 + f64::from(i)}))
            .collect();
        let text = Value::String(Value::Array(rows.clone()).to_string());
        let out = IndicatorsStage(cfg("ticker"))
            .process(&json!({"ticker": "ABC", "rows": text}))
            .unwrap();
        assert_eq!(out.len(), 25);
        assert_eq!(out[0]["ticker"], "ABC");
        assert_eq!(out[0]["ema10"], 11.0);
        assert_eq!(out[0]["rsi14"], Value::Null);
        assert_eq!(out[1]["rsi14"], 100.0);
        assert_eq!(out[19]["bb_mid"], 20.5);
        let e = IndicatorsStage(cfg("ticker"))
            .process(&json!({"ticker": "X", "rows": &rows[..3]}))
            .unwrap_err();
        assert_eq!(
            e.message,
            "3 rows: a ticker needs at least 5 rows of prices"
        );
    }

    #[test]
    fn breadth_of_a_date() {
        let row = |close: f64, prev: Option<f64>| {
            json!({"close": close, "prev_close": prev, "ema20": 10.0, "ema50": 10.0,
                   "ema200": 10.0, "rsi14": 75.0, "macd": 1.0, "macd_signal": 0.0})
        };
        let out = BreadthStage(cfg("date"))
            .process(
                &json!({"date": "2024-01-02", "rows": [row(11.0, Some(10.0)), row(9.0, None)]}),
            )
            .unwrap();
        assert_eq!(
            out[0],
            json!({"date": "2024-01-02", "tickers": 2, "advancers": 1, "decliners": 0,
                   "pct_above_ema20": 50.0, "pct_above_ema50": 50.0, "pct_above_ema200": 50.0,
                   "pct_rsi_over_70": 100.0, "pct_rsi_under_30": 0.0, "pct_macd_over_signal": 100.0})
        );
    }
}
