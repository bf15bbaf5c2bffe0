#!/usr/bin/env python3
"""Market breadth with pandas: the definition Ferry's `indicators` and `breadth` stages
follow, written the vectorised pandas way (groupby + ewm + rolling), and a checker.

    pandas_breadth.py compute --db market.db [--suffix _pd]
        reads `prices` from the SQLite database, writes `indicators{suffix}` and
        `breadth{suffix}` with DataFrame.to_sql (the benchmark's baseline).
    pandas_breadth.py check --db market.db
        computes with pandas and compares every value of Ferry's `indicators` and
        `breadth` tables (relative error <= 1e-9, NULLs equal); exit 1 on any difference.
    pandas_breadth.py check-csv PRICES.csv INDICATORS.csv BREADTH.csv
        the same check over CSV files (ferry-indicators' own test).

A ticker with a NULL close or fewer than 5 rows is bad data: no indicator rows, in no
breadth figure.
"""
import argparse
import sqlite3
import sys
import time

import numpy as np
import pandas as pd

MIN_ROWS = 5
IND_COLS = ["ema10", "ema20", "ema50", "ema100", "ema200", "rsi14", "macd", "macd_signal",
            "macd_hist", "bb_mid", "bb_upper", "bb_lower"]
BREADTH_COLS = ["tickers", "advancers", "decliners", "pct_above_ema20", "pct_above_ema50",
                "pct_above_ema200", "pct_rsi_over_70", "pct_rsi_under_30",
                "pct_macd_over_signal"]


def good_prices(prices: pd.DataFrame) -> pd.DataFrame:
    """Drops bad tickers (a NULL close, fewer than MIN_ROWS rows); sorts by ticker, date."""
    prices = prices.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
    g = prices.groupby("ticker", sort=False)["close"]
    bad = g.transform(lambda s: s.isna().any() or len(s) < MIN_ROWS).astype(bool)
    return prices[~bad].reset_index(drop=True)


def indicators(prices: pd.DataFrame) -> pd.DataFrame:
    """One row per (ticker, date) of good tickers."""
    p = good_prices(prices)
    g = p.groupby("ticker", sort=False)["close"]

    def per_ticker(result):  # groupby-window results carry the ticker as an index level
        return result.reset_index(level=0, drop=True).sort_index()

    out = p[["ticker", "date"]].copy()
    for n in (10, 20, 50, 100, 200):
        out[f"ema{n}"] = per_ticker(g.ewm(span=n, adjust=False).mean())
    delta = g.diff()
    gain = delta.where(delta > 0, 0.0)
    loss = -delta.where(delta < 0, 0.0)
    avg_gain = per_ticker(gain.groupby(p["ticker"], sort=False).ewm(alpha=1 / 14, adjust=False).mean())
    avg_loss = per_ticker(loss.groupby(p["ticker"], sort=False).ewm(alpha=1 / 14, adjust=False).mean())
    rs = avg_gain / avg_loss
    out["rsi14"] = 100 - (100 / (1 + rs))
    ema12 = per_ticker(g.ewm(span=12, adjust=False).mean())
    ema26 = per_ticker(g.ewm(span=26, adjust=False).mean())
    out["macd"] = ema12 - ema26
    out["macd_signal"] = per_ticker(
        out["macd"].groupby(p["ticker"], sort=False).ewm(span=9, adjust=False).mean())
    out["macd_hist"] = out["macd"] - out["macd_signal"]
    mid = per_ticker(g.rolling(20).mean())
    std = per_ticker(g.rolling(20).std())
    out["bb_mid"] = mid
    out["bb_upper"] = mid + 2 * std
    out["bb_lower"] = mid - 2 * std
    return out


def breadth(prices: pd.DataFrame, ind: pd.DataFrame) -> pd.DataFrame:
    """One row per date that has indicator rows."""
    p = good_prices(prices)
    p["prev_close"] = p.groupby("ticker", sort=False)["close"].shift(1)
    d = ind.merge(p[["ticker", "date", "close", "prev_close"]], on=["ticker", "date"])
    by = d.groupby("date", sort=True)
    out = pd.DataFrame({
        "tickers": by.size(),
        "advancers": (d["close"] > d["prev_close"]).groupby(d["date"]).sum(),
        "decliners": (d["close"] < d["prev_close"]).groupby(d["date"]).sum(),
    })
    for name, cond in [
        ("pct_above_ema20", d["close"] > d["ema20"]),
        ("pct_above_ema50", d["close"] > d["ema50"]),
        ("pct_above_ema200", d["close"] > d["ema200"]),
        ("pct_rsi_over_70", d["rsi14"] > 70),
        ("pct_rsi_under_30", d["rsi14"] < 30),
        ("pct_macd_over_signal", d["macd"] > d["macd_signal"]),
    ]:
        out[name] = cond.groupby(d["date"]).mean() * 100
    return out.reset_index()


def compare(name, keys, cols, want: pd.DataFrame, got: pd.DataFrame) -> int:
    """Prints each difference (first 20) and returns how many values differ."""
    m = want.merge(got, on=keys, how="outer", suffixes=("_pd", "_ferry"), indicator=True)
    bad = 0
    missing = m[m["_merge"] != "both"]
    for _, r in missing.head(20).iterrows():
        print(f"{name}: row {tuple(r[k] for k in keys)} only in {r['_merge']}")
    bad += len(missing)
    both = m[m["_merge"] == "both"]
    for c in cols:
        a = both[f"{c}_pd"].astype(float).to_numpy()
        b = both[f"{c}_ferry"].astype(float).to_numpy()
        na, nb = np.isnan(a), np.isnan(b)
        scale = np.maximum(np.abs(a), np.abs(b))
        with np.errstate(invalid="ignore"):
            off = np.abs(a - b) > 1e-9 * scale
        wrong = (na != nb) | (~na & ~nb & off)
        for i in np.flatnonzero(wrong)[:20]:
            row = both.iloc[i]
            print(f"{name}.{c} at {tuple(row[k] for k in keys)}: pandas {a[i]!r}, ferry {b[i]!r}")
        bad += int(wrong.sum())
    print(f"{name}: {len(both)} rows x {len(cols)} values compared, {bad} differ")
    return bad


def read_prices(con) -> pd.DataFrame:
    return pd.read_sql_query("SELECT ticker, date, close FROM prices", con)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compute")
    c.add_argument("--db", required=True)
    c.add_argument("--suffix", default="_pd")
    k = sub.add_parser("check")
    k.add_argument("--db", required=True)
    v = sub.add_parser("check-csv")
    v.add_argument("prices")
    v.add_argument("indicators")
    v.add_argument("breadth")
    args = ap.parse_args()

    if args.cmd == "compute":
        t0 = time.perf_counter()
        con = sqlite3.connect(args.db)
        prices = read_prices(con)
        ind = indicators(prices)
        br = breadth(prices, ind)
        ind.to_sql(f"indicators{args.suffix}", con, if_exists="replace", index=False,
                   chunksize=10000)
        br.to_sql(f"breadth{args.suffix}", con, if_exists="replace", index=False)
        con.commit()
        print(f"pandas: {len(prices)} price rows -> {len(ind)} indicator rows, {len(br)} dates "
              f"in {time.perf_counter() - t0:.2f} s")
        return 0
    if args.cmd == "check":
        con = sqlite3.connect(args.db)
        prices = read_prices(con)
        got_ind = pd.read_sql_query("SELECT * FROM indicators", con)
        got_br = pd.read_sql_query("SELECT * FROM breadth", con)
    else:
        prices = pd.read_csv(args.prices, float_precision="round_trip", dtype={"ticker": str, "date": str})
        got_ind = pd.read_csv(args.indicators, float_precision="round_trip", dtype={"ticker": str, "date": str})
        got_br = pd.read_csv(args.breadth, float_precision="round_trip", dtype={"date": str})
    want_ind = indicators(prices)
    want_br = breadth(prices, want_ind)
    bad = compare("indicators", ["ticker", "date"], IND_COLS, want_ind, got_ind)
    bad += compare("breadth", ["date"], BREADTH_COLS, want_br, got_br)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
