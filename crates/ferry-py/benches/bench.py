"""Ferry for Python's benchmarks (BENCHMARKS.md, "Ferry for Python"): every figure against a
baseline measured in the same run.

    python crates/ferry-py/benches/bench.py overhead [--items 1000000]
    python crates/ferry-py/benches/bench.py io --sim target/release/ferry-sim [--items 400000]
    python crates/ferry-py/benches/bench.py io-inproc [--items 400000]

``overhead``: N no-op items through the engine from Python (``ferry.run``, which is
``push_many``, and ``push`` one at a time), against a plain Python loop that calls the same
handler on fixed-size batches of the size the engine settled on, same run; prints both
per-item costs and the ratio.
``io``: the httpx enrichment example's handler against ``ferry-sim`` with 20 ms calls; the
share of the simulator's own ceiling that Ferry reaches, learning included, and what a plain
thread pool told the simulator's plan reaches. ``io-inproc``: the same with an in-process
simulated API (20 ms calls on 8 slots, a hidden size limit), so no HTTP client shares the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import ferry


def noop(batch):
    return None


def serialize(batch):
    """A handler with a little work per item (what an HTTP or queue sink does first)."""
    return [json.dumps({"id": p, "v": "x"}) for p in batch]


def plain_loop(payloads, size, handler):
    batch = []
    for p in payloads:
        batch.append(p)
        if len(batch) == size:
            handler(batch)
            batch = []
    if batch:
        handler(batch)


def _timed(f):
    """Runs ``f``; its wall time and the process's CPU time (every thread) in seconds."""
    t, c = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - t, time.process_time() - c


def overhead(args) -> None:
    """Per run: Ferry (``ferry.run``, i.e. ``push_many``; then ``push`` one at a time), and the
    plain loop on batches of the size Ferry settled on, back to back; the ratio is per run,
    and the run with the median ``push_many`` ratio is printed. Wall time is the figure; CPU
    time (all of the process's threads) is printed beside it, since on a shared machine the
    wall time of both sides moves with the load."""
    n, size = args.items, args.batch
    handler = serialize if args.handler == "serialize" else noop
    payloads = list(range(n))
    settings = dict(max_items=size, adaptive_batch_size=False, concurrency=args.concurrency)
    if args.intake_capacity:
        settings["intake_capacity"] = args.intake_capacity
    rows = []
    for rep in range(args.repeat):
        report, many, many_cpu = _timed(lambda: ferry.run(handler, payloads, args.preset, **settings))
        assert report.succeeded == report.accepted == n, report
        settled = report.final_batch_size
        _, base, base_cpu = _timed(lambda: plain_loop(payloads, settled, handler))

        one = float("nan")
        if not args.skip_push:
            engine = ferry.Engine(handler, args.preset, **settings)
            push = engine.push

            def one_by_one():
                for p in payloads:
                    push(p)
                return engine.finish()

            report, one, _ = _timed(one_by_one)
            assert report.succeeded == n
        rows.append((base, many, one, settled, base_cpu, many_cpu))
        print(f"run {rep + 1}: plain loop {base:.3f} s (batches of {settled}), ferry push_many {many:.3f} s "
              f"= {many / base:.2f}x (CPU {base_cpu:.3f} / {many_cpu:.3f} s = {many_cpu / base_cpu:.2f}x), "
              f"ferry push {one:.3f} s = {one / base:.2f}x", flush=True)
    base, many, one, settled, base_cpu, many_cpu = sorted(rows, key=lambda r: r[1] / r[0])[len(rows) // 2]
    ns = lambda s: s / n * 1e9  # noqa: E731
    ratios = sorted(r[1] / r[0] for r in rows)
    print(f"\n{n:,} items, {args.handler} handler, preset {args.preset}, batches of {settled} "
          f"(the size Ferry settled on), {args.concurrency} calls at once; median of {args.repeat} runs by the push_many ratio:")
    print("| run | wall | per item | vs. loop | CPU per item (all threads) | vs. loop |")
    print("|---|---|---|---|---|---|")
    print(f"| plain Python loop (baseline) | {base:.3f} s | {ns(base):.0f} ns | 1.00x | {ns(base_cpu):.0f} ns | 1.00x |")
    print(f"| Ferry, push_many / ferry.run | {many:.3f} s | {ns(many):.0f} ns | {many / base:.2f}x | {ns(many_cpu):.0f} ns | {many_cpu / base_cpu:.2f}x |")
    print(f"| Ferry, push one at a time | {one:.3f} s | {ns(one):.0f} ns | {one / base:.2f}x | | |")
    print(f"push_many / plain loop, every run: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio (Ferry push_many / plain loop, median): {many / base:.2f}")


def io_bound(args) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    from http_enrichment import Enricher, rows  # noqa: E402

    import httpx

    cmd = [
        args.sim, "--listen", "127.0.0.1:0", "--slots", str(args.slots), "--per-request-ms", "20",
        "--per-mutation-ms", str(args.per_item_ms), "--request-timeout-ms", str(args.timeout_ms),
        "--rate-limit", "0",
    ]
    sim = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        addr = None
        for line in sim.stdout:
            m = re.search(r"(127\.0\.0\.1:\d+)", line)
            if m:
                addr = m.group(1)
                break
        assert addr, "ferry-sim printed no address"
        base = f"http://{addr}"
        for _ in range(100):
            try:
                httpx.get(base + "/stats")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        ceiling = httpx.get(base + "/stats").json()["profile"]["ceiling_items_per_s"]
        settings = dict(max_concurrency=args.max_concurrency)
        if args.max_items:
            settings["max_items"] = args.max_items
        # The baseline: a plain thread pool told the simulator's plan (its batch size and
        # slot count), on the same simulator, in the same run.
        plan = httpx.get(base + "/stats").json()["profile"]["plan"]
        size, workers = plan["batch"], plan["concurrency"]
        data = list(rows(args.baseline_items))
        enrich = Enricher(base + "/v2")
        t = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(enrich, (data[i:i + size] for i in range(0, len(data), size))))
        pool_rate = len(data) / (time.perf_counter() - t)
        httpx.post(base + "/reset")
        report = ferry.run(Enricher(base + "/v2"), rows(args.items), **settings)
        stats = httpx.get(base + "/stats").json()
        print(report)
        print(f"\nsimulator: {args.slots} slots, 20 ms + {args.per_item_ms} ms per item, timeout {args.timeout_ms} ms")
        print(f"ceiling {ceiling:.0f} items/s")
        print(f"| plain thread pool told the plan ({workers} threads, batches of {size}) | {pool_rate:.0f} items/s | {pool_rate / ceiling:.1%} |")
        print(f"| Ferry, told nothing (learning included) | {report.items_per_sec:.0f} items/s | {report.items_per_sec / ceiling:.1%} |")
        counts = {k: v for k, v in stats.items() if isinstance(v, (int, float))}
        print(f"simulator counts: {counts}")
    finally:
        sim.terminate()
        sim.wait()


class SlotApi:
    """An in-process simulated API: ``slots`` calls at once (more wait for a slot), each
    costing ``base`` seconds; a batch over ``limit`` items holds its slot for ``timeout`` and
    fails (``ferry.TooLarge``). Its ceiling is ``slots * limit / base`` items/s."""

    def __init__(self, slots: int, base: float, limit: int, timeout: float) -> None:
        import threading

        self.sem = threading.BoundedSemaphore(slots)
        self.slots, self.base, self.limit, self.timeout = slots, base, limit, timeout
        self.applied = 0
        self.lock = threading.Lock()

    @property
    def ceiling(self) -> float:
        return self.slots * self.limit / self.base

    def __call__(self, batch):
        with self.sem:
            if len(batch) > self.limit:
                time.sleep(self.timeout)
                raise ferry.TooLarge(f"{len(batch)} items: timed out")
            time.sleep(self.base)
        with self.lock:
            self.applied += len(batch)
        return None


def io_inproc(args) -> None:
    api = SlotApi(args.slots, args.call_ms / 1000.0, args.limit, 2 * args.call_ms / 1000.0)
    report = ferry.run(api, range(args.items), max_concurrency=args.max_concurrency)
    assert api.applied == args.items == report.succeeded
    print(report)
    print(f"\nin-process API: {args.slots} slots, {args.call_ms} ms per call, batches over {args.limit} fail")
    print(f"| Ferry, told nothing (learning included) | {report.items_per_sec:.0f} items/s | "
          f"{report.items_per_sec / api.ceiling:.1%} of {api.ceiling:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--items", type=int, default=1_000_000)
    o.add_argument("--batch", type=int, default=1000)
    o.add_argument("--concurrency", type=int, default=4)
    o.add_argument("--repeat", type=int, default=3)
    o.add_argument("--handler", choices=["noop", "serialize"], default="noop")
    o.add_argument("--preset", default="high_throughput")
    o.add_argument("--intake-capacity", type=int, default=None)
    o.add_argument("--skip-push", action="store_true", help="leave out the push-one-at-a-time row")
    i = sub.add_parser("io")
    i.add_argument("--sim", default="target/release/ferry-sim")
    i.add_argument("--items", type=int, default=400_000)
    i.add_argument("--slots", type=int, default=4)
    i.add_argument("--per-item-ms", type=float, default=0.02)
    i.add_argument("--timeout-ms", type=float, default=22.0)
    i.add_argument("--baseline-items", type=int, default=50_000)
    i.add_argument("--max-items", type=int, default=None)
    i.add_argument("--max-concurrency", type=int, default=64)
    p = sub.add_parser("io-inproc")
    p.add_argument("--items", type=int, default=400_000)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--call-ms", type=float, default=20.0)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--max-concurrency", type=int, default=64)
    args = ap.parse_args()
    {"overhead": overhead, "io": io_bound, "io-inproc": io_inproc}[args.cmd](args)


if __name__ == "__main__":
    main()
