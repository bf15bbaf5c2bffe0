"""Rate-limited HTTP enrichment with httpx against the bundled monday.com-style simulator.

Each batch becomes one GraphQL request of aliased ``change_multiple_column_values`` mutations
(the board-update shape). The handler only classifies what came back: 429 -> ``ferry.Retry``
with the server's ``Retry-After``, 504 -> ``ferry.TooLarge`` (the batch took too long: split
it and learn a smaller size), 5xx or a dropped connection -> an ordinary exception (retry),
an error naming one alias -> ``ferry.Fatal`` for that item. Ferry learns the concurrency and
the batch size while it runs.

    cargo build --release -p ferry-sim
    ./target/release/ferry-sim --listen 127.0.0.1:8080 &      # prints its ceiling
    python crates/ferry-py/examples/http_enrichment.py --url http://127.0.0.1:8080/v2 --items 3000

Prints the report and the items/s reached; with ``--stats`` also the simulator's ceiling and
what it applied (``GET /stats``).
"""

from __future__ import annotations

import argparse
import json
import threading

import httpx

import ferry

BOARD = 8709134353
COUNTRIES = [("US", "United States"), ("CN", "China"), ("VN", "Viet Nam"), ("DE", "Germany")]


def rows(n: int, first_id: int = 1_000_000):
    for i in range(n):
        code, name = COUNTRIES[i % len(COUNTRIES)]
        yield {
            "id": first_id + i,
            "date4": {"date": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"},
            "country": {"countryCode": code, "countryName": name},
        }


def body(batch) -> str:
    fields = []
    for k, row in enumerate(batch):
        values = json.dumps({"date4": row["date4"], "country": row["country"]})
        fields.append(
            f"a{k}: change_multiple_column_values(item_id: {row['id']}, board_id: {BOARD}, "
            f"column_values: {json.dumps(values)}) {{ id }}"
        )
    return json.dumps({"query": "mutation { " + " ".join(fields) + " }"})


class Enricher:
    """The handler: one httpx client per worker thread (httpx clients are not shared)."""

    def __init__(self, url: str, token: str = "test") -> None:
        self.url = url
        self.headers = {"Authorization": token, "Content-Type": "application/json"}
        self.local = threading.local()

    def client(self) -> httpx.Client:
        c = getattr(self.local, "client", None)
        if c is None:
            c = self.local.client = httpx.Client(timeout=30.0)
        return c

    def __call__(self, batch):
        r = self.client().post(self.url, content=body(batch), headers=self.headers)
        if r.status_code == 429:
            raise ferry.Throttled("429 rate limited", after=float(r.headers.get("Retry-After", "1")))
        if r.status_code == 504:
            raise ferry.TooLarge("504 " + r.text[:80])
        if r.status_code == 401:
            raise ferry.Fatal("401 not authenticated")
        r.raise_for_status()  # other 4xx/5xx: an ordinary exception, retried then split
        doc = r.json()
        failed = {}
        for err in doc.get("errors") or []:
            path = err.get("path") or []
            if not path:
                raise ferry.Split(err.get("message", "an unnamed item failed"))
            failed[path[0]] = err.get("message", "rejected")
        data = doc.get("data") or {}
        return [
            ferry.Fatal(failed[f"a{k}"]) if f"a{k}" in failed else data.get(f"a{k}")
            for k in range(len(batch))
        ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080/v2")
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--max-items", type=int, default=None, help="batch-size cap (default: learn it)")
    ap.add_argument("--max-concurrency", type=int, default=64)
    ap.add_argument("--requests-per-sec", type=int, default=None)
    ap.add_argument("--stats", action="store_true", help="print the simulator's ceiling and stats")
    args = ap.parse_args()

    settings = dict(max_concurrency=args.max_concurrency, requests_per_sec=args.requests_per_sec)
    if args.max_items:
        settings["max_items"] = args.max_items
    last = [0.0]

    def show(p: ferry.Progress) -> None:
        if p.elapsed - last[0] >= 1.0 or p.finished:
            last[0] = p.elapsed
            print(f"  {p.succeeded:>7} done  {p.rate:8.0f}/s  concurrency {p.concurrency_limit:>3}  batch {p.batch_size:>4}")

    engine = ferry.Engine(Enricher(args.url), args.preset, on_progress=show, total=args.items, **settings)
    engine.push_many(rows(args.items))
    report = engine.finish()
    print(report)
    print(f"items/s: {report.items_per_sec:.0f}")
    if args.stats:
        stats = httpx.get(args.url.rsplit("/", 1)[0] + "/stats").json()
        ceiling = stats["profile"]["ceiling_items_per_s"]
        print(f"simulator ceiling: {ceiling:.0f} items/s; share reached: {report.items_per_sec / ceiling:.1%}")


if __name__ == "__main__":
    main()
