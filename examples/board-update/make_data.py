#!/usr/bin/env python3
"""Creates the planning database the board update reads: N rows in planning_board_updates.

    python3 make_data.py planning.db 5000 [--poison 5]
    python3 make_data.py planning.db --rows-json - < rows.json   # exact rows: [[id, date, country], ...]

Every row needs an update; with --poison K, K rows carry the value INVALID in
country_of_origin, which is no ISO 3166 country: Ferry dead-letters those rows (naming the
column and the value) and sends the others.
"""
import argparse
import json
import random
import sqlite3
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("rows", type=int, nargs="?", default=0)
    parser.add_argument("--poison", type=int, default=0)
    parser.add_argument("--rows-json", metavar="FILE",
                        help="write exactly these rows ([[id, fob_date, country], ...]; - for stdin)")
    args = parser.parse_args()
    path, n, poison = args.path, args.rows, args.poison
    rng = random.Random(42)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE IF EXISTS planning_board_updates")
    db.execute(
        "CREATE TABLE planning_board_updates ("
        " monday_item_id INTEGER PRIMARY KEY, fob_date TEXT, country_of_origin TEXT,"
        " needs_update INTEGER NOT NULL DEFAULT 1)"
    )
    if args.rows_json is not None:
        src = sys.stdin if args.rows_json == "-" else open(args.rows_json)
        exact = [(int(i), d, c, 1) for i, d, c in json.load(src)]
        db.executemany("INSERT INTO planning_board_updates VALUES (?, ?, ?, ?)", exact)
        db.commit()
        print(f"{path}: {len(exact)} rows")
        return
    countries = ["US", "CN", "VN", "IN", "MX", "DE", "TR", "BD"]
    poisoned = set(rng.sample(range(n), poison)) if poison else set()
    rows = []
    for i in range(n):
        country = "INVALID" if i in poisoned else rng.choice(countries)
        day = 1 + i % 28
        rows.append((1_000_000 + i, f"2025-{1 + i % 12:02d}-{day:02d}", country, 1))
    db.executemany("INSERT INTO planning_board_updates VALUES (?, ?, ?, ?)", rows)
    db.commit()
    print(f"{path}: {n} rows ({poison} poison)")


if __name__ == "__main__":
    main()
