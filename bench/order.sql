-- An order with two items is placed and paid.
\set u random(1, 20000)
BEGIN;
INSERT INTO lms.orders (user_id, status, payment_method, payment_mode)
SELECT id, 'PENDING', 'card', 'card' FROM lms.users WHERE email = 'seed' || :u || '@bench.example'
RETURNING id AS order_id \gset
INSERT INTO lms.order_items (order_id, item_type, name, price, quantity)
VALUES (:order_id, 'course', 'Course', 100, 1), (:order_id, 'assessment', 'Exam', 80, 1);
UPDATE lms.orders SET status = 'COMPLETED' WHERE id = :order_id;
END;
