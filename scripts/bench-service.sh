#!/usr/bin/env bash
# End-to-end benchmarks of the job service (`ferry-bench service`), each printed beside a
# baseline measured in the same run.
#
#   scripts/bench-service.sh [POSTGRES_URL]
#
#   1. sentiment through the KubeSentiment-compatible batch API on the default SQLite
#      store: 200 jobs x 100 texts from 8 concurrent clients polling status every 5 ms, one in-process worker
#      (as `ferry serve`); baseline: direct predict() calls on the same texts.
#      Targets: >= 10,000 texts/s end to end, p95 submit-to-done <= 150 ms.
#   2. the no-op handler (`echo`) on PostgreSQL with two `ferry worker` processes, same
#      load shape, then 100 jobs x 1,000 items; baseline: the same rows inserted and
#      updated by plain SQL on the same tables from 8 connections.
#      Target: >= 5,000 items/s end to end.
#   3. One client, two servers, same run: `ferry serve` (SQLite, its own process) and the
#      Python peer of the batch API (examples/sentiment-service/peer: FastAPI, in memory,
#      VADER; its venv in target/py-peer), each loaded by `ferry-bench service --url` with
#      the first load's shape, alternating, three times; each line gives the server
#      process's CPU per text (`--pid`).
#   4. Scaling: the `sleep` handler (a model serving one batch of at most 32 items at a time
#      per process, 20 ms per batch) on PostgreSQL with 1, 2 and 4 `ferry worker` processes,
#      100 jobs x 1,000 items, 8 clients: items/s per worker count.
# PostgreSQL: POSTGRES_URL, else $DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test
# (a fresh schema is created and dropped).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${1:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}

# ferry-bench starts the `ferry worker` processes from the `ferry` binary beside it.
# CARGO_TARGET_DIR is honoured (the binaries are looked for there).
cargo build --release -q -p ferry-cli -p ferry-bench
out=${CARGO_TARGET_DIR:-target}
bench=$out/release/ferry-bench
ferry=$out/release/ferry

$bench service --store sqlite --handler sentiment --jobs 200 --items 100 --clients 8
$bench service --store "$PG" --handler echo --workers 2 --jobs 200 --items 100 --clients 8
$bench service --store "$PG" --handler echo --workers 2 --jobs 100 --items 1000 --clients 8

# 3. Same client, Ferry and the Python peer.
peer_py=$out/py-peer/bin/python
if [[ ! -x $peer_py ]]; then
  python3 -m venv "$out/py-peer"
fi
"$peer_py" -m pip install -q --disable-pip-version-check -r examples/sentiment-service/peer/requirements.txt
tmp=$(mktemp -d)
"$ferry" serve --listen 127.0.0.1:18721 --store "$tmp/bench.db" 2>"$tmp/serve.log" &
ferry_pid=$!
(cd examples/sentiment-service/peer \
  && exec "$OLDPWD/$peer_py" -m uvicorn batch_api:app --host 127.0.0.1 --port 18722 \
     --log-level warning 2>"$tmp/peer.log") &
peer_pid=$!
trap 'kill $ferry_pid $peer_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for port in 18721 18722; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/api/v1/batch/queue/status" >/dev/null && break
    sleep 0.1
  done
done
for round in 1 2 3; do
  echo "== round $round: ferry serve (SQLite), then the Python peer, same client"
  $bench service --url http://127.0.0.1:18721 --pid $ferry_pid --jobs 200 --items 100 --clients 8
  $bench service --url http://127.0.0.1:18722 --pid $peer_pid --jobs 200 --items 100 --clients 8
done
kill $ferry_pid $peer_pid

# 4. Scaling on PostgreSQL with a handler that waits 20 ms per batch.
for w in 1 2 4; do
  $bench service --store "$PG" --handler sleep --workers $w --jobs 100 --items 1000 --clients 8
done
