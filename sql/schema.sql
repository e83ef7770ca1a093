-- Reference shop-side schema (MySQL 8 / MariaDB 10.6+) that kkt-worker reads.
--
-- A real shop keeps its own tables; kkt-worker maps its table/column names through
-- worker.source.SourceMapping. This file is the default mapping, the test fixture schema
-- (tests/conftest.py: shop_schema) and the schema of the SQLite demo shop (worker/demo.py).
--
-- Money is DECIMAL (never FLOAT/DOUBLE): amounts must be exact to the kopeck.
-- Amounts and quantities have MORE decimals than a receipt allows (6 instead of 2 / 3): the column
-- keeps what the shop wrote (33.297), so that the worker rejects it naming the field instead of the
-- database rounding it silently to 33.30 before the worker sees it.
-- Times (paid_at, delivered_at) are wall-clock times in source.timezone (default Europe/Moscow).
-- A payment row is inserted only when it is paid (the worker treats every row as eligible).

CREATE TABLE payments (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    kind            ENUM('sale', 'refund') NOT NULL DEFAULT 'sale',
    order_ref       VARCHAR(64) NOT NULL,
    -- for kind = 'refund': payments.id of the refunded sale, else NULL
    refund_of       BIGINT UNSIGNED NULL,
    -- the money received now (for 1214 = 6 «передача в кредит» lines only: 0)
    amount          DECIMAL(18, 6) NOT NULL,
    -- tag 1008 of the receipt: where the electronic receipt is sent (one of the two is enough)
    customer_email  VARCHAR(64) NULL,
    customer_phone  VARCHAR(20) NULL,
    paid_at         DATETIME(6) NOT NULL,
    created_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_payments_order_ref (order_ref),
    KEY ix_payments_refund_of (refund_of),
    KEY ix_payments_created_at (created_at),
    CONSTRAINT fk_payments_refund_of FOREIGN KEY (refund_of) REFERENCES payments (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE payment_items (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    payment_id       BIGINT UNSIGNED NOT NULL,
    line_no          INT NOT NULL,
    name             VARCHAR(128) NOT NULL,
    price            DECIMAL(18, 6) NOT NULL,
    -- up to 3 decimals on a receipt: weight goods (0.750 kg)
    quantity         DECIMAL(16, 6) NOT NULL,
    amount           DECIMAL(18, 6) NOT NULL,
    -- VAT rate code (worker.receipts.rules.SHOP_VAT_CODES): vat22, vat22_122, vat10, vat10_110, vat5, vat5_105,
    -- vat7, vat7_107, vat0, none, vat20, vat20_120 (20 % only for operations before 2026)
    vat              VARCHAR(16) NOT NULL,
    -- tag 1214 (full_prepayment, prepayment, advance, full_payment, partial_payment, credit,
    -- credit_payment, or 1..7); NULL = full_payment
    payment_method   VARCHAR(24) NULL,
    -- tag 1212 (commodity, service, ...); NULL = commodity
    payment_subject  VARCHAR(24) NULL,
    -- tag 2108 (piece, kg, ...); NULL = piece
    measure_unit     VARCHAR(8) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_payment_items_line (payment_id, line_no),
    CONSTRAINT fk_payment_items_payment FOREIGN KEY (payment_id) REFERENCES payments (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Goods handed over to the customer: for the prepayment (1214 = full_prepayment) → settlement
-- (1214 = full_payment, "зачёт предоплаты") flow, which a later worker version reads.
CREATE TABLE deliveries (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    payment_id      BIGINT UNSIGNED NOT NULL,
    delivered_at    DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY ix_deliveries_payment (payment_id),
    CONSTRAINT fk_deliveries_payment FOREIGN KEY (payment_id) REFERENCES payments (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Marked goods («Честный ЗНАК»): one row per unit of a marked line, its marking code exactly as
-- scanned (raw bytes, GS 0x1D included; base64 of those bytes is accepted too). The worker reads it
-- when settings map source.mapping.codes_table = payment_item_codes (docs/marking.md). Never store
-- the human-readable "(01)…(21)…" form: the FN cannot check it.
CREATE TABLE payment_item_codes (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    payment_id  BIGINT UNSIGNED NOT NULL,
    line_no     INT NOT NULL,
    unit_no     INT NOT NULL,
    code        VARBINARY(255) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_payment_item_codes_unit (payment_id, line_no, unit_no),
    CONSTRAINT fk_payment_item_codes_payment FOREIGN KEY (payment_id) REFERENCES payments (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
