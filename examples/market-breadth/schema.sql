-- Market breadth tables (SQLite; generate.py applies it, with PostgreSQL types for a
-- postgres:// URL). Keys: prices and indicators by (ticker, date), breadth by date.
CREATE TABLE IF NOT EXISTS prices (
    ticker TEXT NOT NULL, date TEXT NOT NULL,
    open REAL, high REAL, low REAL, close REAL, volume INTEGER,
    PRIMARY KEY (ticker, date)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indicators (
    ticker TEXT NOT NULL, date TEXT NOT NULL,
    ema10 REAL, ema20 REAL, ema50 REAL, ema100 REAL, ema200 REAL, rsi14 REAL,
    macd REAL, macd_signal REAL, macd_hist REAL, bb_mid REAL, bb_upper REAL, bb_lower REAL,
    PRIMARY KEY (ticker, date)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breadth (
    date TEXT PRIMARY KEY, tickers INTEGER, advancers INTEGER, decliners INTEGER,
    pct_above_ema20 REAL, pct_above_ema50 REAL, pct_above_ema200 REAL,
    pct_rsi_over_70 REAL, pct_rsi_under_30 REAL, pct_macd_over_signal REAL
);
