#!/usr/bin/env bash
# Property-based tests of the whole HTTP API from its own OpenAPI document: schemathesis
# generates requests (valid and invalid) for every operation /openapi.json describes, sends
# them to a real `ferry serve`, and checks every answer against the document.
#
#   scripts/schemathesis.sh                # 100 examples per operation
#   FERRY_ST_EXAMPLES=500 scripts/schemathesis.sh
#   scripts/schemathesis.sh --seed 1       # extra arguments go to `schemathesis run`
#
# - Python: the venv at target/py (scripts/py-env.sh creates it with the pinned schemathesis).
# - Server: target/debug/ferry (built here), a fresh SQLite store in a temporary directory,
#   a free loopback port, with an API key for the tenant `schemathesis`, so the key check
#   runs too (requests carry `Authorization: Bearer <key>`; `ignored_auth` checks that
#   requests without it are refused).
# - Checks: no 5xx, every status, content type, header and body as documented, invalid data
#   rejected, valid data accepted, auth enforced.
# Exits non-zero on any failure; the server's log is printed then.
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${FERRY_ST_EXAMPLES:-100}"
checks="not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
positive_data_acceptance,ignored_auth"

python="$(bash scripts/py-env.sh)"
schemathesis="$(dirname "$python")/schemathesis"

echo "== building ferry" >&2
cargo build -q -p ferry-cli
ferry="target/debug/ferry"

tmp="$(mktemp -d)"
server=""
cleanup() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
key="$("$ferry" keys create --store "$tmp/s.db" --name schemathesis schemathesis 2>/dev/null)"

"$ferry" serve --listen "127.0.0.1:$port" --store "$tmp/s.db" >"$tmp/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
    if "$python" -c "import urllib.request; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "ferry serve exited:" >&2
        cat "$tmp/serve.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "== ferry serve on $base; schemathesis $("$schemathesis" --version 2>&1 | tail -1)" >&2

# A job's event stream lasts until the job ends: read its first event and move on (the job
# behind a generated or captured id is seldom finished) instead of waiting for a timeout.
cat >"$tmp/schemathesis.toml" <<'TOML'
[[operations]]
include-path = "/v1/jobs/{id}/events"
max-stream-events = 1
request-timeout = 5
TOML

status=0
"$schemathesis" --config-file "$tmp/schemathesis.toml" run "$base/openapi.json" \
    --checks "$checks" \
    --header "Authorization: Bearer $key" \
    --max-examples "$examples" \
    --request-timeout 30 \
    --suppress-health-check too_slow \
    --report junit --report-dir target/schemathesis \
    "$@" || status=$?

if [[ $status -ne 0 ]]; then
    echo "== schemathesis failed ($status); the server's log:" >&2
    tail -n 100 "$tmp/serve.log" >&2
fi
exit "$status"
