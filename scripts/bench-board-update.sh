#!/usr/bin/env bash
# End-to-end benchmark of the monday.com board-update workload against ferry-sim.
#
#   scripts/bench-board-update.sh [ROWS] [FIXED_ROWS]
#
# Runs, in one go and against the same simulator settings:
#   1. Ferry with adaptive batch size and concurrency, told nothing of the simulator
#      (generous caps only: 1,000 items per batch, 64 calls in flight), over ROWS rows;
#   2. Ferry held to the job file's fixed settings (15 per batch, 3 at once, 100 ms between
#      batch starts), over FIXED_ROWS rows (it is slow);
# and prints each one's items/s and its share of the simulator's theoretical ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-60000}
FIXED_ROWS=${2:-5000}
SLOTS=4 PER_REQUEST_MS=4 PER_MUTATION_MS=2 TIMEOUT_MS=50 RATE=100

cargo build --release -q -p ferry-cli -p ferry-sim
work=$(mktemp -d)
trap 'kill $sim_pid 2>/dev/null || true; rm -rf "$work"' EXIT

./target/release/ferry-sim --listen 127.0.0.1:0 --slots $SLOTS --per-request-ms $PER_REQUEST_MS \
  --per-mutation-ms $PER_MUTATION_MS --request-timeout-ms $TIMEOUT_MS --rate-limit $RATE \
  --poison "" > "$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$work/sim.log" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^ferry-sim listening on //p' "$work/sim.log")
ceiling=$(sed -n 's/^ *ceiling \([0-9.]*\) items\/s.*/\1/p' "$work/sim.log")
echo "simulator at $addr: $(grep 'ceiling' "$work/sim.log" | sed 's/^ *//')"

run() { # name rows job.toml
  python3 examples/board-update/make_data.py "$work/planning.db" "$2" > /dev/null
  rm -f "$work"/*.checkpoint.db "$work"/*.dead.jsonl
  curl -s -X POST "http://$addr/reset" > /dev/null
  local start end
  start=$(date +%s.%N)
  DATABASE_URL="$work/planning.db" MONDAY_API_TOKEN=bench MONDAY_API_URL="http://$addr/v2" \
    ./target/release/ferry run "$3" --execute > "$work/$1.out" 2> "$work/$1.err"
  end=$(date +%s.%N)
  local applied
  applied=$(curl -s "http://$addr/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mutations_applied"])')
  python3 - "$1" "$2" "$start" "$end" "$ceiling" "$applied" "$work/$1.out" <<'PY'
import sys
name, rows, start, end, ceiling, applied, out = sys.argv[1:]
secs = float(end) - float(start)
rate = int(rows) / secs
settled = [l.strip() for l in open(out) if l.startswith("settled on")]
print(f"{name:>10}: {rows} rows in {secs:6.2f} s = {rate:7.0f} items/s = {100 * rate / float(ceiling):5.1f}% of the ceiling"
      f" ({applied} applies; {settled[0] if settled else ''})")
PY
}

cat > "$work/adaptive.toml" <<TOML
[source]
type = "sql"
url = "\${DATABASE_URL}"
query = "SELECT monday_item_id, fob_date, country_of_origin FROM planning_board_updates WHERE needs_update = 1"
key = "monday_item_id"

[vars]
board_id = 8709134353

[handler]
type = "graphql"
url = "\${MONDAY_API_URL}"
mutation = 'change_multiple_column_values(item_id: {{ item.monday_item_id }}, board_id: {{ board_id }}, column_values: {{ columns | graphql_string }}) { id }'

[handler.headers]
Authorization = "\${MONDAY_API_TOKEN}"

[handler.columns]
date4 = "item.fob_date"
country = "item.country_of_origin"

[batch]
max_items = 1000

[dispatch]
max_concurrency = 64
TOML
sed -e 's/^max_items = 1000/max_items = 15\nadaptive = false/' \
    -e 's/^max_concurrency = 64/concurrency = 3\npause = "100ms"\nsplit = [15, 5, 1]/' \
    "$work/adaptive.toml" > "$work/fixed.toml"

run adaptive "$ROWS" "$work/adaptive.toml"
run fixed "$FIXED_ROWS" "$work/fixed.toml"
