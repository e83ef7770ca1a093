-- Least-privilege, read-only MySQL/MariaDB account for kkt-worker (run as an admin on the shop DB).
--
-- Placeholders — replace ALL of them before running, e.g.
--     sed -e 's/{ro_user}/kkt_ro/' -e 's/{ro_host}/10.0.0.5/' -e 's/{shop_db}/shop/' \
--         -e "s/{ro_password}/$(cat /run/credentials/kkt-worker/mysql-password)/" sql/grants.sql | mysql
--   {ro_user}      account name; kkt_ro by convention
--   {ro_host}      the worker's host or IP as the server sees it ('127.0.0.1' / 'localhost' on the
--                  same machine). Avoid '%': the account should only work from the worker.
--   {ro_password}  a long random password. Never commit it; keep it in a systemd credential or
--                  an environment variable (see deploy/), never in the repository.
--   {shop_db}      the shop's database (schema) name
--
-- Why column-level grants: the worker can read exactly the columns it needs and nothing else
-- (no addresses, no order comments…). SELECT * fails with error 1142 for such a user and a column
-- outside the list fails with 1143, so kkt-worker always lists its columns explicitly.
-- If the shop maps other table/column names (worker.source.SourceMapping), grant those instead.
--
-- Not granted on purpose: INSERT/UPDATE/DELETE (the worker never writes to the shop), PROCESS,
-- REPLICATION SLAVE/CLIENT, FILE, SUPER (CIS MySQL benchmark 5.3/5.8).
-- When the worker is not on the same host as the database add "REQUIRE SSL" to CREATE USER.
-- Also check SHOW GRANTS FOR '{ro_user}'@'{ro_host}' for inherited grants (e.g. to PUBLIC on test_%).

CREATE USER '{ro_user}'@'{ro_host}' IDENTIFIED BY '{ro_password}'
    WITH MAX_USER_CONNECTIONS 3;

GRANT SELECT (id, kind, order_ref, refund_of, amount, customer_email, customer_phone, paid_at)
    ON `{shop_db}`.`payments` TO '{ro_user}'@'{ro_host}';

GRANT SELECT (payment_id, line_no, name, price, quantity, amount, vat,
              payment_method, payment_subject, measure_unit)
    ON `{shop_db}`.`payment_items` TO '{ro_user}'@'{ro_host}';

-- only for receipts.flow: prepayment (the settlement receipt is made when a delivery row appears)
GRANT SELECT (id, payment_id, delivered_at)
    ON `{shop_db}`.`deliveries` TO '{ro_user}'@'{ro_host}';

-- only for marked goods (source.mapping.codes_table = payment_item_codes; docs/marking.md)
GRANT SELECT (payment_id, line_no, unit_no, code)
    ON `{shop_db}`.`payment_item_codes` TO '{ro_user}'@'{ro_host}';
