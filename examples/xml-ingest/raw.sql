-- The table the original system keeps its records in: one XML document per row
-- (`generate.py --raw` writes its rows as raw_orders.csv; load them with
-- \copy raw_orders FROM 'raw_orders.csv' CSV).
CREATE TABLE raw_orders (
    id  bigint PRIMARY KEY,
    doc text
);
