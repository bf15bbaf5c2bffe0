#!/usr/bin/env python3
"""Server CPU per request of the batch API's reads, one request at a time.

    scripts/bench-requests.py PORT PID [N]

Against a server on 127.0.0.1:PORT whose process is PID (`ferry serve` or the Python peer):
submits one job of 100 texts, waits half a second for it to finish, then sends N
`GET /api/v1/batch/status/{id}` (default 5,000) and N/10 `GET /api/v1/batch/results/{id}`
on one keep-alive connection, and prints the server process's CPU time (user + system,
from /proc/PID/stat) per request of each kind. Standard library only.
"""
import http.client, json, sys, os, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"texts": ["good day"] * 100})
c.request("POST", "/api/v1/batch/predict", body, {"Content-Type": "application/json"})
jid = json.loads(c.getresponse().read())["job_id"]
time.sleep(0.5)
for what, path in [("status", f"/api/v1/batch/status/{jid}"), ("results", f"/api/v1/batch/results/{jid}")]:
    m = n if what == "status" else n // 10
    c0 = cpu(); t0 = time.time()
    for _ in range(m):
        c.request("GET", path); r = c.getresponse(); r.read()
    c1 = cpu()
    print(f"{what}: {m} requests, server CPU {1e6*(c1-c0)/m:.1f} us per request, {m/(time.time()-t0):.0f}/s")
