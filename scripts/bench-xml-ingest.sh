#!/usr/bin/env bash
# XML ingest benchmark: N generated orders (~450-500 bytes of XML each) -> PostgreSQL with
# `ferry run examples/xml-ingest/orders.toml` (XML in, rows of both tables committed), beside
# the baseline `psql \copy` of the same rows as CSV (COPY alone, the conversion not counted),
# in the same run, into identical empty tables in two schemas. Each side runs ROUNDS times,
# alternating; the best time of each is compared. Ferry's tables are then checked exact
# against the generator's CSV (count + md5 over every column).
#
#   scripts/bench-xml-ingest.sh [N=200000] [ROUNDS=3]
#
# Needs: a release build (cargo build --release -p ferry-cli), python3, psql, PostgreSQL on
# 127.0.0.1:5432 (database `test`, user postgres, trust).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-3}
FERRY=${FERRY:-./target/release/ferry}
DIR=${DIR:-/tmp/ferry-bench-xml}
EX=examples/xml-ingest
PSQL=(psql -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 -Atq)

[ -x "$FERRY" ] || { echo "build first: cargo build --release -p ferry-cli" >&2; exit 1; }
rm -rf "$DIR" && mkdir -p "$DIR"
python3 "$EX/generate.py" "$N" "$DIR/data"
xml_bytes=$(stat -c %s "$DIR/data/orders.xml")
lines=$(wc -l < "$DIR/data/order_lines.csv")
echo "orders: $N ($((xml_bytes / N)) bytes of XML each, $((xml_bytes / 1048576)) MiB), line items: $lines"

fresh() { # fresh SCHEMA: the example's empty tables in a new schema
  "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS $1 CASCADE; CREATE SCHEMA $1;"
  PGOPTIONS="-csearch_path=$1" "${PSQL[@]}" -f "$EX/schema.sql"
}
now() { date +%s.%N; }

best_copy=""; best_ferry=""
for round in $(seq "$ROUNDS"); do
  fresh ferry_bench_copy
  t0=$(now)
  (cd "$DIR/data" && PGOPTIONS="-csearch_path=ferry_bench_copy" "${PSQL[@]}" \
    -c "\\copy orders FROM 'orders.csv' CSV" -c "\\copy order_lines FROM 'order_lines.csv' CSV")
  t1=$(now)
  copy=$(echo "$t1 - $t0" | bc -l)

  fresh ferry_bench_xml
  t0=$(now)
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dferry_bench_xml" \
    RUST_LOG=warn "$FERRY" run "$EX/orders.toml" \
    --set "source.path=$DIR/data/orders.xml" --set "dead_letters.path=$DIR/dead.jsonl" \
    --set checkpoint.enabled=false ${FERRY_SETS:-} > "$DIR/ferry-$round.txt"
  t1=$(now)
  ferry=$(echo "$t1 - $t0" | bc -l)
  printf 'round %s: psql \\copy %.2f s, ferry %.2f s\n' "$round" "$copy" "$ferry"
  if [ -z "$best_copy" ] || (( $(echo "$copy < $best_copy" | bc -l) )); then best_copy=$copy; fi
  if [ -z "$best_ferry" ] || (( $(echo "$ferry < $best_ferry" | bc -l) )); then best_ferry=$ferry; fi
done

echo "--- Ferry's end report (last round) ---"
cat "$DIR/ferry-$ROUNDS.txt"
echo "--- exactness (ferry_bench_xml against the generator's CSV) ---"
(cd "$DIR/data" && PGOPTIONS="-csearch_path=ferry_bench_xml" "${PSQL[@]}" -f "$OLDPWD/$EX/check.sql")
printf 'psql \\copy (COPY alone): best %.2f s = %.0f orders/s\n' "$best_copy" "$(echo "$N / $best_copy" | bc -l)"
printf 'ferry (XML in, rows committed): best %.2f s = %.0f orders/s\n' "$best_ferry" "$(echo "$N / $best_ferry" | bc -l)"
printf 'ratio ferry / COPY alone: %.2f\n' "$(echo "$best_copy / $best_ferry" | bc -l)"
"${PSQL[@]}" -c "DROP SCHEMA ferry_bench_copy CASCADE; DROP SCHEMA ferry_bench_xml CASCADE;"
