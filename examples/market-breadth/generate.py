#!/usr/bin/env python3
"""Generates N tickers x D trading days of random-walk prices into `prices`, creating the
market-breadth tables (schema.sql) first.

    generate.py --db market.db --tickers 133 --days 200
    generate.py --db market.db --tickers 500 --days 5 --append   # 5 more days per ticker
    generate.py --db postgres://postgres@127.0.0.1/test ...      # PostgreSQL (psql needed)

Days are weekdays from 2015-01-02; --append continues after the last date in `prices`.
Standard library only (numpy speeds it up when installed).
"""
import argparse
import datetime as dt
import os
import random
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS prices (ticker text NOT NULL, date date NOT NULL,
  open float8, high float8, low float8, close float8, volume bigint, PRIMARY KEY (ticker, date));
CREATE TABLE IF NOT EXISTS indicators (ticker text NOT NULL, date date NOT NULL,
  ema10 float8, ema20 float8, ema50 float8, ema100 float8, ema200 float8, rsi14 float8,
  macd float8, macd_signal float8, macd_hist float8, bb_mid float8, bb_upper float8,
  bb_lower float8, PRIMARY KEY (ticker, date));
CREATE TABLE IF NOT EXISTS breadth (date date PRIMARY KEY, tickers integer, advancers integer,
  decliners integer, pct_above_ema20 float8, pct_above_ema50 float8, pct_above_ema200 float8,
  pct_rsi_over_70 float8, pct_rsi_under_30 float8, pct_macd_over_signal float8);
"""


def weekdays(start: dt.date, n: int):
    d, out = start, []
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d += dt.timedelta(days=1)
    return out


def rows(tickers, days, last_close, rng):
    """Yields (ticker, date, open, high, low, close, volume)."""
    for t in tickers:
        price = last_close.get(t) or rng.uniform(10, 200)
        for d in days:
            o = price
            price = max(1.0, price * (1 + rng.gauss(0, 0.02)))
            c = round(price, 2)
            hi = round(max(o, c) * (1 + abs(rng.gauss(0, 0.005))), 2)
            lo = round(min(o, c) * (1 - abs(rng.gauss(0, 0.005))), 2)
            yield (t, d, round(o, 2), hi, lo, c, rng.randrange(1000, 1000000))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="market.db", help="SQLite file (or sqlite:PATH), or postgres://...")
    ap.add_argument("--tickers", type=int, default=133)
    ap.add_argument("--days", type=int, default=200)
    ap.add_argument("--append", action="store_true", help="add --days days after the last date")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed + (1000 if a.append else 0))
    tickers = [f"T{i:05d}" for i in range(a.tickers)]
    pg = a.db.startswith("postgres")
    if pg:
        subprocess.run(["psql", a.db, "-q", "-v", "ON_ERROR_STOP=1", "-c", PG_SCHEMA], check=True)
        last = subprocess.run(["psql", a.db, "-tAc", "SELECT max(date)::text FROM prices"],
                              check=True, capture_output=True, text=True).stdout.strip()
        closes = {}
        if a.append and last:
            out = subprocess.run(["psql", a.db, "-tAF,", "-c",
                                  f"SELECT ticker, close FROM prices WHERE date = '{last}'"],
                                 check=True, capture_output=True, text=True).stdout
            closes = {l.split(",")[0]: float(l.split(",")[1]) for l in out.splitlines() if l}
    else:
        path = a.db[len("sqlite:"):] if a.db.startswith("sqlite:") else a.db
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(open(os.path.join(HERE, "schema.sql")).read())
        last = con.execute("SELECT max(date) FROM prices").fetchone()[0]
        closes = {}
        if a.append and last:
            closes = dict(con.execute("SELECT ticker, close FROM prices WHERE date = ?", (last,)))
    if a.append and last:
        start = dt.date.fromisoformat(last) + dt.timedelta(days=1)
    else:
        start = dt.date(2015, 1, 2)
    days = weekdays(start, a.days)
    if pg:
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            for r in rows(tickers, days, closes, rng):
                f.write(",".join(map(str, r)) + "\n")
        subprocess.run(["psql", a.db, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                        f"\\copy prices FROM '{f.name}' WITH (FORMAT csv)"], check=True)
        os.unlink(f.name)
    else:
        con.executemany("INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?, ?)", rows(tickers, days, closes, rng))
        con.commit()
    print(f"{len(tickers)} tickers x {len(days)} days ({days[0]} .. {days[-1]}) into {a.db}")


if __name__ == "__main__":
    sys.exit(main())
