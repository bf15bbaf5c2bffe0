#!/usr/bin/env bash
# XML ingest benchmark on MariaDB and SQLite: N generated orders -> `orders` and `order_lines`
# with `ferry run examples/xml-ingest/orders-sql.toml` (XML in, rows committed; the `sql`
# handler's multi-row INSERT ... ON DUPLICATE KEY UPDATE / ON CONFLICT of the orders and the
# inserts of their lines per batch, in one transaction, idempotent by key), each beside
# its own bulk-load baseline of the same rows as CSV in the same run (the conversion not
# counted): MariaDB `LOAD DATA LOCAL INFILE` through the `mariadb` client, SQLite
# `sqlite3 .import --csv` (in one transaction). Each side runs ROUNDS times, alternating;
# the best time of each is compared. Ferry's rows are then counted and summed.
#
#   scripts/bench-xml-ingest-sql.sh [N=200000] [ROUNDS=3]
#
# Needs: a release build (cargo build --release -p ferry-cli), python3, the `mariadb` and
# `sqlite3` clients, MariaDB on 127.0.0.1:3306 (root, no password, local_infile ON).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}
FERRY=${FERRY:-./target/release/ferry}
DIR=${DIR:-/tmp/ferry-bench-xml-sql}
EX=examples/xml-ingest
DB=ferry_bench_sql
MARIADB=(mariadb -h 127.0.0.1 -uroot --local-infile=1)

[ -x "$FERRY" ] || { echo "build first: cargo build --release -p ferry-cli" >&2; exit 1; }
rm -rf "$DIR" && mkdir -p "$DIR"
python3 "$EX/generate.py" "$N" "$DIR/data"
echo "orders: $N ($(( $(stat -c %s "$DIR/data/orders.xml") / N )) bytes of XML each)"
now() { date +%s.%N; }
ferry_run() { # URL ROUND NAME
  DATABASE_URL="$1" RUST_LOG=warn "$FERRY" run "$EX/orders-sql.toml" \
    --set "source.path=$DIR/data/orders.xml" --set "dead_letters.path=$DIR/dead.jsonl" \
    --set checkpoint.enabled=false ${FERRY_SETS:-} > "$DIR/ferry-$3-$2.txt"
}
best() { if [ -z "$1" ] || (( $(echo "$2 < $1" | bc -l) )); then echo "$2"; else echo "$1"; fi; }

# --- MariaDB ---
mariadb_fresh() {
  "${MARIADB[@]}" -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB;"
  "${MARIADB[@]}" "$DB" < "$EX/schema-sql.sql"
}
best_load=""; best_ferry_m=""
for round in $(seq "$ROUNDS"); do
  mariadb_fresh
  t0=$(now)
  "${MARIADB[@]}" "$DB" -e "LOAD DATA LOCAL INFILE '$DIR/data/orders.csv' INTO TABLE orders FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'; LOAD DATA LOCAL INFILE '$DIR/data/order_lines.csv' INTO TABLE order_lines FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'"
  load=$(echo "$(now) - $t0" | bc -l)
  mariadb_fresh
  t0=$(now)
  ferry_run "mysql://root@127.0.0.1:3306/$DB" "$round" mariadb
  ferry=$(echo "$(now) - $t0" | bc -l)
  printf 'MariaDB round %s: LOAD DATA LOCAL INFILE %.2f s, ferry %.2f s\n' "$round" "$load" "$ferry"
  best_load=$(best "$best_load" "$load"); best_ferry_m=$(best "$best_ferry_m" "$ferry")
done
echo "--- Ferry -> MariaDB, end report of the last round ---"
cat "$DIR/ferry-mariadb-$ROUNDS.txt"
"${MARIADB[@]}" "$DB" -e "SELECT COUNT(*) AS orders, COUNT(DISTINCT id) AS ids, SUM(total) AS total_sum, SUM(email IS NULL) AS null_emails, (SELECT COUNT(*) FROM order_lines) AS line_items FROM orders"
"${MARIADB[@]}" -e "DROP DATABASE $DB"

# --- SQLite ---
best_import=""; best_ferry_s=""
for round in $(seq "$ROUNDS"); do
  rm -f "$DIR/import.db" "$DIR/ferry.db"
  sqlite3 "$DIR/import.db" < "$EX/schema-sql.sql"
  sqlite3 "$DIR/ferry.db" < "$EX/schema-sql.sql"
  t0=$(now)
  sqlite3 "$DIR/import.db" "BEGIN" ".import --csv $DIR/data/orders.csv orders" ".import --csv $DIR/data/order_lines.csv order_lines" "COMMIT"
  import=$(echo "$(now) - $t0" | bc -l)
  t0=$(now)
  ferry_run "sqlite:$DIR/ferry.db" "$round" sqlite
  ferry=$(echo "$(now) - $t0" | bc -l)
  printf 'SQLite round %s: sqlite3 .import %.2f s, ferry %.2f s\n' "$round" "$import" "$ferry"
  best_import=$(best "$best_import" "$import"); best_ferry_s=$(best "$best_ferry_s" "$ferry")
done
echo "--- Ferry -> SQLite, end report of the last round ---"
cat "$DIR/ferry-sqlite-$ROUNDS.txt"
sqlite3 "$DIR/ferry.db" "SELECT 'orders=' || COUNT(*), 'ids=' || COUNT(DISTINCT id), 'null_emails=' || SUM(email IS NULL), 'lines=' || (SELECT COUNT(*) FROM order_lines) FROM orders"

rate() { echo "$N / $1" | bc -l; }
printf 'MariaDB LOAD DATA LOCAL INFILE (bulk load alone): best %.2f s = %.0f orders/s\n' "$best_load" "$(rate "$best_load")"
printf 'MariaDB ferry (XML in, rows committed): best %.2f s = %.0f orders/s; ratio %.2f\n' "$best_ferry_m" "$(rate "$best_ferry_m")" "$(echo "$best_load / $best_ferry_m" | bc -l)"
printf 'SQLite sqlite3 .import (bulk load alone): best %.2f s = %.0f orders/s\n' "$best_import" "$(rate "$best_import")"
printf 'SQLite ferry (XML in, rows committed): best %.2f s = %.0f orders/s; ratio %.2f\n' "$best_ferry_s" "$(rate "$best_ferry_s")" "$(echo "$best_import / $best_ferry_s" | bc -l)"
