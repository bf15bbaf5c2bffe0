#!/usr/bin/env python3
"""Ferry, told nothing, against a fixed client told each API's settings: every ferry-sim profile.

    scripts/bench-profiles.py [--items 5000] [--profiles default,token-bucket,...]
                              [--faults] [--poison-every 1000] [--ferry PATH]

For each profile, in one run and against the same simulator process (reset in between):

1. the fixed client (`ferry-sim-client`), told the profile's plan (batch size, concurrency,
   request rate) by `--profile`, sends ITEMS board updates;
2. `ferry run` sends the same ITEMS rows (a SQLite planning database) as a Ferry-format job
   with the monday.com board's column types asked once, capped at 32 calls in flight and
   100 items per batch and told nothing else about the API.

It prints, per profile: items/s of each, Ferry's share of the fixed client, process CPU per
item of each (user + system, from the child's rusage), Ferry's dead letters, and the rows
the simulator applied. `--faults` adds 2 % 500s and 1 % connections dropped after the
change was applied, to both sides. `--poison-every N` poisons one row in N (a valid country
the simulator refuses, named or not by the profile) and also runs each profile without
poison, printing Ferry's throughput with poison as a share of without.

Nothing here is tuned per profile: both clients get the same work, the same simulator and
the same faults; the fixed client is the baseline a user who knew the API would write.
`--ferry PATH` runs another `ferry` binary (default target/release/ferry): two builds
compared in alternating runs of `--ferry-only`, each against a fresh simulator.
"""
import argparse
import json
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
PROFILES = ["default", "gateway-queue", "gateway-queue-small", "token-bucket",
            "complexity-budget", "poison"]
POISON = "AQ"  # a valid ISO 3166 code, so Ferry's formatter sends it and the API refuses it

JOB = """
[source]
type = "sql"
url = "${{DATABASE_URL}}"
query = "SELECT monday_item_id, fob_date, country_of_origin FROM planning_board_updates ORDER BY monday_item_id"
key = "monday_item_id"

[vars]
board_id = 8709134353

[handler]
type = "graphql"
url = "${{MONDAY_API_URL}}"
board_id = "8709134353"
mutation = 'change_multiple_column_values(item_id: {{{{ item.monday_item_id }}}}, board_id: {{{{ board_id }}}}, column_values: {{{{ columns | graphql_string }}}}) {{ id }}'

[handler.headers]
Authorization = "${{MONDAY_API_TOKEN}}"

[handler.columns]
date4 = "item.fob_date"
country = "item.country_of_origin"

[batch]
max_items = {max_items}

[dispatch]
max_concurrency = {max_concurrency}
"""


def make_db(path, n, poison_every):
    db = sqlite3.connect(path)
    db.execute("DROP TABLE IF EXISTS planning_board_updates")
    db.execute("CREATE TABLE planning_board_updates (monday_item_id INTEGER PRIMARY KEY,"
               " fob_date TEXT, country_of_origin TEXT)")
    countries = ["US", "CN", "VN", "IN", "MX", "DE", "TR", "BD"]
    rows = []
    for i in range(n):
        poisoned = poison_every and i % poison_every == poison_every // 2
        country = POISON if poisoned else countries[i % len(countries)]
        rows.append((1_000_000 + i, f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}", country))
    db.executemany("INSERT INTO planning_board_updates VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


def http(url, method="GET"):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def timed(cmd, env=None):
    """Runs cmd; returns (seconds, cpu seconds of the child, stdout, stderr, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    secs = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return secs, cpu, p.stdout, p.stderr, p.returncode


def start_sim(profile, faults, poison_unnamed_value):
    args = [os.path.join(RELEASE, "ferry-sim"), "--listen", "127.0.0.1:0", "--profile", profile,
            "--poison", poison_unnamed_value]
    if faults:
        args += ["--error-rate", "0.02", "--drop-rate", "0.01", "--seed", "7"]
    sim = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    while True:
        line = sim.stdout.readline()
        if not line:
            raise SystemExit(f"ferry-sim --profile {profile} exited:\n" + "".join(lines))
        lines.append(line)
        m = re.match(r"ferry-sim listening on (\S+)", line)
        if m:
            addr = m.group(1)
        if re.match(r"\s*ceiling ", line):
            break
    ceiling = float(re.search(r"ceiling ([0-9.]+)", "".join(lines)).group(1))
    return sim, addr, ceiling


def run_profile(profile, items, faults, poison_every, work, log_dir=None, ferry_only=False,
                ferry_bin=None):
    sim, addr, ceiling = start_sim(profile, faults, POISON)
    try:
        base = f"http://{addr}"
        # 1. The fixed client, told the profile's plan.
        cmd = [os.path.join(RELEASE, "ferry-sim-client"), "--url", f"{base}/v2",
               "--profile", profile, "--items", str(items), "--reset"]
        if poison_every:
            cmd += ["--poison-every", str(poison_every)]
        if ferry_only:
            fixed = {"secs": float("nan"), "rate": float("nan"), "cpu_us": float("nan")}
        else:
            secs, cpu, out, err, code = timed(cmd)
            if code != 0:
                raise SystemExit(f"fixed client failed on {profile}:\n{out}\n{err}")
            fixed = {"secs": secs, "rate": items / secs, "cpu_us": cpu / items * 1e6}
        # 2. Ferry, told nothing.
        http(f"{base}/reset", "POST")
        db = os.path.join(work, "planning.db")
        make_db(db, items, poison_every)
        job = os.path.join(work, "profiles.toml")
        with open(job, "w") as f:
            f.write(JOB.format(max_items=100, max_concurrency=32))
        for leftover in os.listdir(work):
            if ".checkpoint" in leftover or leftover.endswith(".dead.jsonl"):
                os.remove(os.path.join(work, leftover))
        env = dict(os.environ, DATABASE_URL=db, MONDAY_API_TOKEN="bench",
                   MONDAY_API_URL=f"{base}/v2")
        if log_dir:
            env["RUST_LOG"] = "ferry_core=debug"
        secs, cpu, out, err, code = timed([ferry_bin or os.path.join(RELEASE, "ferry"), "run", job],
                                         env)
        if log_dir:
            with open(os.path.join(log_dir, f"{profile}.log"), "w") as f:
                f.write(out + "\n" + err)
        if code not in (0, 3):
            raise SystemExit(f"ferry failed on {profile} (exit {code}):\n{out}\n{err}")
        stats = http(f"{base}/stats")
        dead = int(re.search(r"(\d+) dead-lettered", out).group(1))
        settled = next((l.strip() for l in out.splitlines() if l.startswith("settled on")), "")
        ferry = {"secs": secs, "rate": items / secs, "cpu_us": cpu / items * 1e6, "dead": dead,
                 "applied": stats.get("items_applied", stats.get("mutations_applied")),
                 "settled": settled}
        return ceiling, fixed, ferry
    finally:
        sim.terminate()
        sim.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--faults", action="store_true")
    ap.add_argument("--poison-every", type=int, default=0)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--ferry-only", action="store_true",
                    help="skip the fixed client (for looking at Ferry alone; prints no ratio)")
    ap.add_argument("--ferry", metavar="PATH",
                    help="the ferry binary to run (default target/release/ferry)")
    ap.add_argument("--log-dir", help="write each Ferry run's output and ferry_core debug log "
                                      "(one line per finished call) to DIR/PROFILE.log")
    args = ap.parse_args()
    if args.ferry and not os.access(args.ferry, os.X_OK):
        raise SystemExit(f"--ferry {args.ferry}: no executable file there")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferry-cli", "-p", "ferry-sim"],
                       cwd=ROOT, check=True)
    print(f"{args.items} items per run; faults {'2 % 500s + 1 % drops' if args.faults else 'off'}"
          f"; poison {'1 in ' + str(args.poison_every) if args.poison_every else 'none'}")
    print(f"{'profile':<20} {'ceiling':>8} {'fixed/s':>8} {'ferry/s':>8} {'ratio':>6} "
          f"{'fixed µs/it':>11} {'ferry µs/it':>11} {'dead':>5} {'applied':>8}  ferry settled on")
    worst = None
    with tempfile.TemporaryDirectory() as work:
        for profile in args.profiles.split(","):
            ceiling, fixed, ferry = run_profile(profile, args.items, args.faults,
                                                args.poison_every, work, args.log_dir,
                                                args.ferry_only, args.ferry)
            ratio = ferry["rate"] / fixed["rate"]
            worst = ratio if worst is None else min(worst, ratio)
            print(f"{profile:<20} {ceiling:>8.1f} {fixed['rate']:>8.1f} {ferry['rate']:>8.1f} "
                  f"{ratio:>6.2f} {fixed['cpu_us']:>11.0f} {ferry['cpu_us']:>11.0f} "
                  f"{ferry['dead']:>5} {ferry['applied']:>8}  {ferry['settled']}", flush=True)
            if args.poison_every:
                _, _, clean = run_profile(profile, args.items, args.faults, 0, work,
                                          ferry_only=True, ferry_bin=args.ferry)
                print(f"{'':<20} without poison: ferry {clean['rate']:.1f}/s; with poison "
                      f"{ferry['rate'] / clean['rate']:.2f} of it", flush=True)
    print(f"worst ferry/fixed ratio: {worst:.2f}")


if __name__ == "__main__":
    sys.exit(main())
