#!/usr/bin/env bash
# Creates, once, the Python environment the test harnesses use: a venv at target/py (or
# $FERRY_PY_ENV) with the packages of scripts/requirements-test.txt, the one list of them.
# Idempotent and safe to run concurrently: it reinstalls only when that list changed (a hash
# is kept in the venv), under a lock. Prints the venv's python path on stdout; pip's output
# goes to stderr.
#
#   PY="$(scripts/py-env.sh)" && "$PY" -c 'import httpx'
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FERRY_PY_ENV:-$root/target/py}"
requirements="$root/scripts/requirements-test.txt"
python="$venv/bin/python"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"
if [[ ! -x "$python" ]]; then
    echo "py-env: creating $venv" >&2
    python3 -m venv "$venv" >&2
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    echo "py-env: installing $(grep -cv '^\s*\(#\|$\)' "$requirements") packages from $requirements" >&2
    "$python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$stamp"
fi
echo "$python"
