-- Compares the job's tables with the rows the generator wrote (orders.csv, order_lines.csv,
-- run from the data folder): counts, and an md5 over every column of every row in key order.
-- Prints name=value lines.
CREATE TEMP TABLE expected_orders (LIKE orders);
CREATE TEMP TABLE expected_lines (LIKE order_lines);
\copy expected_orders FROM 'orders.csv' CSV
\copy expected_lines FROM 'order_lines.csv' CSV
SELECT 'orders=' || count(*) FROM orders;
SELECT 'expected_orders=' || count(*) FROM expected_orders;
SELECT 'lines=' || count(*) FROM order_lines;
SELECT 'expected_lines=' || count(*) FROM expected_lines;
SELECT 'orders_checksum=' || md5(string_agg(t::text, '|' ORDER BY id)) FROM orders t;
SELECT 'expected_orders_checksum=' || md5(string_agg(t::text, '|' ORDER BY id)) FROM expected_orders t;
SELECT 'lines_checksum=' || md5(string_agg(t::text, '|' ORDER BY order_id, line_no)) FROM order_lines t;
SELECT 'expected_lines_checksum=' || md5(string_agg(t::text, '|' ORDER BY order_id, line_no)) FROM expected_lines t;
SELECT 'null_emails=' || count(*) FROM orders WHERE email IS NULL;
SELECT 'expected_null_emails=' || count(*) FROM expected_orders WHERE email IS NULL;
