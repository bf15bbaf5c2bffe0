#!/usr/bin/env bash
# The fairness acceptance test at full size, on SQLite and PostgreSQL: tenant a queues
# 200,000 items, then tenant b 100; a worker claims and completes 100 items at a time. b's
# job must complete while a's backlog is still over 150,000 (each run prints the figures).
# CI runs the same shape with 20,000 items (`tenants_share_claims` in the store suite).
#
#   scripts/fairness.sh            # FERRY_TEST_PG_URL overrides the PostgreSQL URL
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p ferry-store --test store full_size -- --ignored --nocapture --test-threads 1
