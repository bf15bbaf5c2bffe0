#!/usr/bin/env bash
# End-to-end benchmark of the market-breadth example (examples/market-breadth/): from the
# database and back, Ferry's phased job beside a vectorised pandas implementation
# (read_sql + groupby ewm/rolling + to_sql into the same database) measured in the same run.
#
#   scripts/bench-market-breadth.sh [TICKERS] [DAYS]
#   PRICES_DB=big.db scripts/bench-market-breadth.sh 5000 2520   # reuse generated prices
#
#   1. the seed's size, 133 tickers x 200 days: Ferry end to end (process start to exit);
#   2. TICKERS x DAYS (default 5,000 x 2,520 = 12.6 M price rows): Ferry, then pandas, each on
#      its own copy of the same generated SQLite database.
# Each run is checked: pandas_breadth.py check compares Ferry's tables with pandas' values.
set -euo pipefail
cd "$(dirname "$0")/.."
TICKERS=${1:-5000}
DAYS=${2:-2520}

cargo build --release -q -p ferry-cli
ferry=$PWD/target/release/ferry
py=$(bash scripts/py-env.sh)
ex=$PWD/examples/market-breadth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

secs() { python3 -c "import time; print(f'{time.time():.3f}')"; }

bench() { # NAME TICKERS DAYS
  local name=$1 dir=$work/$1
  mkdir -p "$dir"
  # prices DEST: a fresh database with only `prices`. With PRICES_DB (made earlier by
  # generate.py with the same TICKERS and DAYS; generating 12.6 M rows takes minutes) a copy
  # of it, else generated once into prices.db and copied.
  prices() {
    if [ "$name" = large ] && [ -n "${PRICES_DB:-}" ]; then
      cp "$PRICES_DB" "$1"
      python3 -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript('DELETE FROM indicators; DELETE FROM breadth; DROP TABLE IF EXISTS ferry_indicator_state;'); c.commit()" "$1"
    else
      [ -f "$dir/prices.db" ] || python3 "$ex/generate.py" --db "$dir/prices.db" --tickers "$2" --days "$3" >/dev/null
      cp "$dir/prices.db" "$1"
    fi
  }
  # One database at a time (12.6 M rows grow to ~2.7 GB with their indicators): Ferry's is
  # checked and removed before pandas' copy is made.
  prices "$dir/market.db" "$2" "$3"
  cp "$ex/market-breadth.toml" "$dir/"
  sync
  local t0 t1 t2 t3
  t0=$(secs)
  MARKET_DB="sqlite:$dir/market.db" "$ferry" run "$dir/market-breadth.toml" >"$dir/ferry.out" 2>"$dir/ferry.err"
  t1=$(secs)
  "$py" "$ex/pandas_breadth.py" check --db "$dir/market.db" >"$dir/check.out"
  rm -f "$dir/market.db"*
  prices "$dir/pandas.db" "$2" "$3"
  sync
  t2=$(secs)
  "$py" "$ex/pandas_breadth.py" compute --db "$dir/pandas.db" --suffix "" >"$dir/pandas.out"
  t3=$(secs)
  local rows=$(( $2 * $3 ))
  local ferry_s pandas_s
  ferry_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
  pandas_s=$(python3 -c "print(f'{$t3 - $t2:.2f}')")
  echo "== $name: $2 tickers x $3 days = $rows price rows (SQLite)"
  sed 's/^/   ferry: /' "$dir/ferry.out"
  echo "   ferry  end to end: ${ferry_s} s ($(python3 -c "print(f'{$2 / ($t1 - $t0):.0f}')") tickers/s)"
  echo "   pandas end to end: ${pandas_s} s ($(python3 -c "print(f'{$2 / ($t3 - $t2):.0f}')") tickers/s)"
  echo "   ferry / pandas time: $(python3 -c "print(f'{($t1 - $t0) / ($t3 - $t2):.2f}')")"
  sed 's/^/   check: /' "$dir/check.out"
  rm -rf "$dir"
}

bench seed-size 133 200
bench large "$TICKERS" "$DAYS"
echo "(machine: $(nproc) cores, shared with other work while measuring)"
