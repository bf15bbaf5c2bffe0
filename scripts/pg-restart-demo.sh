#!/bin/bash
# A real `pg_ctlcluster ... restart` while `ferry serve --store postgres://...` takes and runs
# KubeSentiment-compatible batch jobs: every accepted job must complete with one result per
# text, and the service must stay up. It restarts this machine's PostgreSQL, so it is a manual
# check, not part of the tests (they terminate only their own connections instead).
#
#   FERRY=target/release/ferry bash scripts/pg-restart-demo.sh
set -u
FERRY=${FERRY:-target/release/ferry}
tag=ferry_demo_restart
work=$(mktemp -d)
psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA IF EXISTS $tag CASCADE; CREATE SCHEMA $tag" 2>/dev/null
url="postgres://postgres@127.0.0.1:5432/test?application_name=$tag&options=-csearch_path%3D$tag"
$FERRY serve --listen 127.0.0.1:8791 --store "$url" > $work/serve.log 2>&1 &
pid=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8791/healthz && break; sleep 0.2; done
python3 -c 'import json; print(json.dumps({"texts": [f"text {i}: I love it" for i in range(1000)]}))' > $work/t.json
: > $work/ids.txt
( for j in $(seq 80); do
    r=$(curl -s -X POST -H 'content-type: application/json' -d @$work/t.json http://127.0.0.1:8791/api/v1/batch/predict)
    echo "$r" | python3 -c 'import sys,json; d=json.load(sys.stdin); print(d.get("job_id") or ("REFUSED " + str(d.get("status"))))' >> $work/ids.txt
  done ) &
sub=$!
sleep 1.5
echo "restarting PostgreSQL while jobs are submitted and processed ($(wc -l < $work/ids.txt) submitted so far)"
pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart; echo "restart rc $?"
wait $sub
echo "submissions: $(grep -vc REFUSED $work/ids.txt) accepted, $(grep -c REFUSED $work/ids.txt) refused"
ok=0; bad=0
for id in $(grep -v REFUSED $work/ids.txt); do
  for t in $(seq 600); do
    s=$(curl -s http://127.0.0.1:8791/api/v1/batch/status/$id)
    echo "$s" | grep -q '"status":"completed"' && break
    sleep 0.2
  done
  if echo "$s" | python3 -c 'import sys,json; s=json.load(sys.stdin); sys.exit(0 if s["processed_texts"]==1000 and s["failed_texts"]==0 else 1)'; then ok=$((ok+1)); else bad=$((bad+1)); echo "$s"; fi
done
echo "jobs completed with 1000 results: $ok; not: $bad"
echo "server still running: $(kill -0 $pid 2>/dev/null && echo yes || echo no)"
psql -h 127.0.0.1 -U postgres -d test -tAc "SELECT count(*) || ' results, ' || count(DISTINCT item_id) || ' distinct items' FROM $tag.results"
grep -ciE "retry|reconnect|lost|error|warn" $work/serve.log | sed 's/^/log lines about the outage: /'
grep -iE "retry|reconnect|lost|error|warn" $work/serve.log | head -3
kill $pid; wait $pid 2>/dev/null
psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA IF EXISTS $tag CASCADE" 2>/dev/null
