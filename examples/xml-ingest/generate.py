#!/usr/bin/env python3
"""Generates nested order records as XML, and the rows they must become as CSV.

    python3 generate.py N OUT_DIR [--seed S] [--gz] [--files K] [--bad]

Writes OUT_DIR/orders.xml (or orders-1.xml ... orders-K.xml with --files K; `.gz` with
--gz), and OUT_DIR/orders.csv and OUT_DIR/order_lines.csv: exactly the rows the job in this
folder must write (schema.sql), in PostgreSQL's CSV format (an unquoted empty field is NULL,
a quoted one an empty string). Each order has a customer (email optional), a total with a
currency attribute, a date, a paid flag, an optional note (free text with entities, CDATA,
line breaks and non-ASCII letters) and 1 to 4 line items with attributes, in document order.
About 500 bytes of XML per order.

--raw also writes OUT_DIR/raw_orders.csv: one row (id, doc) per order holding its XML
document, as the original system kept its records in a table (`raw.sql` creates it, and
`orders-from-table.toml` parses that column with an `xml` stage).

--bad inserts, after every 1000th order, a record that is not well-formed and one whose
total is not a decimal: the job dead-letters both and writes every other record.
"""

import argparse
import gzip
import os
import random
from xml.sax.saxutils import escape, quoteattr

NAMES = ["Ann", "Bo", "Chloé", "Dmitri", "Eve", "Fátima", "Gus", "Hiro", "Ines", "José"]
SURNAMES = ["O'Neil", "Smith & Sons", "Ng", "Müller", "<Admin>", "Brown", "Lee", "García"]
NOTES = [
    'Leave at the "back" door & ring twice',
    "Fragile: <glass> inside",
    "Call first\nthen deliver",
    "Gift wrap ☺, no invoice",
    "50% off > list price; keep receipt",
    "",
]
CURRENCIES = ["EUR", "USD", "GBP", "JPY"]
PRODUCTS = ["Widget", "Gadget <XL>", "Sprocket & nut", "Cable \"2m\"", "Lamp", "Desk"]


def csv_field(value):
    if value is None:
        return ""
    return '"' + str(value).replace('"', '""') + '"'


def csv_line(values):
    return ",".join(csv_field(v) for v in values) + "\n"


def text(value, cdata):
    """Element text: a CDATA section or escaped text (both decode to `value`)."""
    if cdata and "]]>" not in value:
        return "<![CDATA[" + value + "]]>"
    return escape(value)


def order(rng, oid):
    """The XML of one order, its row and its line rows."""
    first, last = rng.choice(NAMES), rng.choice(SURNAMES)
    name = f"{first} {last}"
    cust_id = f"C{rng.randrange(1, 50000):05d}"
    email = f"{first.lower()}.{oid}@example.com" if rng.random() < 0.7 else None
    year, month, day = 2020 + rng.randrange(5), rng.randrange(1, 13), rng.randrange(1, 29)
    placed = f"{year}-{month:02d}-{day:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
    date = f"{year}-{month:02d}-{day:02d}"
    currency = rng.choice(CURRENCIES)
    paid = rng.random() < 0.8
    note = rng.choice(NOTES) if rng.random() < 0.5 else None
    items = []
    for _ in range(rng.randrange(1, 5)):
        sku = f"SKU-{rng.randrange(1, 9999):04d}"
        qty = rng.randrange(1, 20)
        price = f"{rng.randrange(1, 100000) / 100:.2f}"
        desc = rng.choice(PRODUCTS) if rng.random() < 0.8 else None
        items.append((sku, qty, price, desc))
    total = f"{sum(q * float(p) for _, q, p, _ in items):.2f}"

    xml = [f'<order id="{oid}" placed="{placed}">']
    xml.append(f'<customer id={quoteattr(cust_id)}><name>{text(name, False)}</name>')
    if email is not None:
        xml.append(f"<email>{escape(email)}</email>")
    xml.append("</customer>")
    xml.append(f'<total currency="{currency}">{total}</total><date>{date}</date>')
    xml.append(f"<paid>{'true' if paid else 'false'}</paid>")
    if note is not None:
        xml.append(f"<note>{text(note, rng.random() < 0.5)}</note>")
    xml.append("<items>")
    for sku, qty, price, desc in items:
        xml.append(f'<item sku="{sku}" qty="{qty}"><price>{price}</price>')
        if desc is not None:
            xml.append(f"<desc>{text(desc, rng.random() < 0.3)}</desc>")
        xml.append("</item>")
    xml.append("</items></order>\n")
    row = [oid, placed, cust_id, name, email, total, currency, date,
           "true" if paid else "false", note, len(items)]
    lines = [[oid, i + 1, sku, qty, price, desc] for i, (sku, qty, price, desc) in enumerate(items)]
    return "".join(xml), row, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gz", action="store_true")
    ap.add_argument("--files", type=int, default=0)
    ap.add_argument("--bad", action="store_true")
    ap.add_argument("--raw", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    opener = gzip.open if args.gz else open
    suffix = ".xml.gz" if args.gz else ".xml"
    names = ([f"orders{suffix}"] if args.files == 0
             else [f"orders-{k + 1}{suffix}" for k in range(args.files)])
    per_file = -(-args.n // len(names))
    oid = 0
    raw = open(os.path.join(args.out, "raw_orders.csv"), "w", encoding="utf-8") if args.raw else None
    with open(os.path.join(args.out, "orders.csv"), "w", encoding="utf-8") as orders_csv, \
         open(os.path.join(args.out, "order_lines.csv"), "w", encoding="utf-8") as lines_csv:
        for name in names:
            with opener(os.path.join(args.out, name), "wt", encoding="utf-8") as xml:
                xml.write('<?xml version="1.0" encoding="UTF-8"?>\n<orders>\n')
                for _ in range(per_file):
                    if oid >= args.n:
                        break
                    oid += 1
                    rec, row, lines = order(rng, oid)
                    xml.write(rec)
                    if raw:
                        raw.write(csv_line([str(oid), rec]))
                    orders_csv.write(csv_line(row))
                    for line in lines:
                        lines_csv.write(csv_line(line))
                    if args.bad and oid % 1000 == 0:
                        xml.write(f'<order id="bad{oid}"><customer><name>x</customer></order>\n')
                        xml.write(f'<order id="{10**9 + oid}"><total currency="EUR">12,50</total></order>\n')
                xml.write("</orders>\n")
    if raw:
        raw.close()


if __name__ == "__main__":
    main()
