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
# PostgreSQL: POSTGRES_URL, else $DATABASE_URL, else postgres://postgres@127.0.0.1:5432/test
# (a fresh schema is created and dropped).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${1:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}}

# ferry-bench starts the `ferry worker` processes from the `ferry` binary beside it.
cargo build --release -q -p ferry-cli -p ferry-bench
bench=./target/release/ferry-bench

$bench service --store sqlite --handler sentiment --jobs 200 --items 100 --clients 8
$bench service --store "$PG" --handler echo --workers 2 --jobs 200 --items 100 --clients 8
$bench service --store "$PG" --handler echo --workers 2 --jobs 100 --items 1000 --clients 8
