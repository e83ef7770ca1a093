-- Demo rows for the reference schema (sql/schema.sql): a small Moscow shop, March 2026.
-- Load into an empty shop database:   mysql shop < sql/schema.sql && mysql shop < sql/demo_data.sql
--
-- What it exercises: VAT 22 % (and 10 % for a book), a weight item (0.750 kg of coffee beans, unit
-- 'kg'), a service line "Доставка", customers with only an e-mail, only a phone, or both (tag 1008),
-- and payment 9: a refund of line 1 of sale 2 (refund_of = 2).
-- The same baskets are produced by worker/demo.py for the SQLite demo shop.
-- Data are fictitious (example.* domains, made-up phone numbers).

SET NAMES utf8mb4;

INSERT INTO payments (id, kind, order_ref, refund_of, amount, customer_email, customer_phone, paid_at) VALUES
    (1, 'sale', 'ORD-2026-1001', NULL, 2490.00, 'ivan.petrov@example.ru', NULL, '2026-03-02 10:15:00.000000'),
    (2, 'sale', 'ORD-2026-1002', NULL, 3502.50, NULL, '+79161234567', '2026-03-02 15:22:00.000000'),
    (3, 'sale', 'ORD-2026-1003', NULL, 3875.50, 'olga.smirnova@example.com', '+79037654321', '2026-03-02 20:29:00.000000'),
    (4, 'sale', 'ORD-2026-1004', NULL, 389.90, 'a.kuznetsov@example.org', NULL, '2026-03-03 01:36:00.000000'),
    (5, 'sale', 'ORD-2026-1005', NULL, 2402.00, NULL, '+79265550011', '2026-03-03 06:43:00.000000'),
    (6, 'sale', 'ORD-2026-1006', NULL, 3949.90, 'ivan.petrov@example.ru', NULL, '2026-03-03 11:50:00.000000'),
    (7, 'sale', 'ORD-2026-1007', NULL, 1792.50, NULL, '+79161234567', '2026-03-03 16:57:00.000000'),
    (8, 'sale', 'ORD-2026-1008', NULL, 2105.50, 'olga.smirnova@example.com', '+79037654321', '2026-03-03 22:04:00.000000'),
    (9, 'refund', 'ORD-2026-1002', 2, 1792.50, NULL, '+79161234567', '2026-03-04 03:15:00.000000');

INSERT INTO payment_items (payment_id, line_no, name, price, quantity, amount, vat, payment_method, payment_subject, measure_unit) VALUES
    (1, 1, 'Чайник электрический Polaris PWK 1725', 2490.00, 1.000, 2490.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (2, 1, 'Кофе в зёрнах «Арабика», на развес', 2390.00, 0.750, 1792.50, 'vat22', 'full_payment', 'commodity', 'kg'),
    (2, 2, 'Полотенце махровое 50×90', 549.00, 2.000, 1098.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (2, 3, 'Книга «Мастер и Маргарита»', 612.00, 1.000, 612.00, 'vat10', 'full_payment', 'commodity', 'piece'),
    (3, 1, 'Набор карандашей, 24 цвета', 315.50, 1.000, 315.50, 'vat22', 'full_payment', 'commodity', 'piece'),
    (3, 2, 'Термокружка 450 мл', 720.00, 1.000, 720.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (3, 3, 'Чайник электрический Polaris PWK 1725', 2490.00, 1.000, 2490.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (3, 4, 'Доставка', 350.00, 1.000, 350.00, 'vat22', 'full_payment', 'service', 'piece'),
    (4, 1, 'Кофе молотый «Жокей» 250 г', 389.90, 1.000, 389.90, 'vat22', 'full_payment', 'commodity', 'piece'),
    (5, 1, 'Книга «Мастер и Маргарита»', 612.00, 1.000, 612.00, 'vat10', 'full_payment', 'commodity', 'piece'),
    (5, 2, 'Зарядное устройство USB-C 65 Вт', 1790.00, 1.000, 1790.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (6, 1, 'Термокружка 450 мл', 720.00, 1.000, 720.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (6, 2, 'Чайник электрический Polaris PWK 1725', 2490.00, 1.000, 2490.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (6, 3, 'Кофе молотый «Жокей» 250 г', 389.90, 1.000, 389.90, 'vat22', 'full_payment', 'commodity', 'piece'),
    (6, 4, 'Доставка', 350.00, 1.000, 350.00, 'vat22', 'full_payment', 'service', 'piece'),
    (7, 1, 'Кофе в зёрнах «Арабика», на развес', 2390.00, 0.750, 1792.50, 'vat22', 'full_payment', 'commodity', 'kg'),
    (8, 1, 'Зарядное устройство USB-C 65 Вт', 1790.00, 1.000, 1790.00, 'vat22', 'full_payment', 'commodity', 'piece'),
    (8, 2, 'Набор карандашей, 24 цвета', 315.50, 1.000, 315.50, 'vat22', 'full_payment', 'commodity', 'piece'),
    (9, 1, 'Кофе в зёрнах «Арабика», на развес', 2390.00, 0.750, 1792.50, 'vat22', 'full_payment', 'commodity', 'kg');

-- Sale 1 was handed over to the customer (for the later prepayment → settlement flow).
INSERT INTO deliveries (payment_id, delivered_at) VALUES (1, '2026-03-03 12:40:00.000000');
