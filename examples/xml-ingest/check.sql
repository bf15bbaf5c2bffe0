CREATE TEMP TABLE exp_orders (LIKE orders);
CREATE TEMP TABLE exp_lines (LIKE order_lines);
\copy exp_orders FROM 'orders.csv' CSV
\copy exp_lines FROM 'order_lines.csv' CSV
SELECT (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM exp_orders) AS expected,
       (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM orders t) = (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM exp_orders t) AS orders_equal,
       (SELECT count(*) FROM order_lines) AS lines, (SELECT count(*) FROM exp_lines) AS exp_lines,
       (SELECT md5(string_agg(t::text, '|' ORDER BY order_id, line_no)) FROM order_lines t) = (SELECT md5(string_agg(t::text, '|' ORDER BY order_id, line_no)) FROM exp_lines t) AS lines_equal,
       (SELECT count(*) FROM orders WHERE email IS NULL) AS null_emails;
