-- The tables for the `sql` handler on MariaDB/MySQL and SQLite (orders-sql.toml): the same
-- columns as schema.sql's.
CREATE TABLE orders (
    id            BIGINT PRIMARY KEY,
    placed_at     DATETIME NOT NULL,
    customer_id   VARCHAR(16) NOT NULL,
    customer_name TEXT NOT NULL,
    email         TEXT,
    total         DECIMAL(12, 2) NOT NULL,
    currency      CHAR(3) NOT NULL,
    order_date    DATE NOT NULL,
    paid          BOOLEAN NOT NULL,
    note          TEXT,
    item_count    INTEGER NOT NULL
);

CREATE TABLE order_lines (
    order_id    BIGINT NOT NULL REFERENCES orders (id),
    line_no     INTEGER NOT NULL,
    sku         VARCHAR(16) NOT NULL,
    qty         INTEGER NOT NULL,
    price       DECIMAL(10, 2) NOT NULL,
    description TEXT,
    PRIMARY KEY (order_id, line_no)
);
