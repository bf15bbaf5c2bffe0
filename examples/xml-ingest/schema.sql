-- The tables the XML ingest job writes: one row per order, one per line item (in document
-- order, `line_no` from 1).
CREATE TABLE orders (
    id            bigint PRIMARY KEY,
    placed_at     timestamptz NOT NULL,
    customer_id   text NOT NULL,
    customer_name text NOT NULL,
    email         text,
    total         numeric(12, 2) NOT NULL,
    currency      char(3) NOT NULL,
    order_date    date NOT NULL,
    paid          boolean NOT NULL,
    note          text,
    item_count    integer NOT NULL
);

CREATE TABLE order_lines (
    order_id    bigint NOT NULL REFERENCES orders (id),
    line_no     integer NOT NULL,
    sku         text NOT NULL,
    qty         integer NOT NULL,
    price       numeric(10, 2) NOT NULL,
    description text,
    PRIMARY KEY (order_id, line_no)
);
