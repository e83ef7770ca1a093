"""MySQLSource against the real MariaDB: polling, fresh snapshots, grants, failures, exactness."""
from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from worker.shop import open_source
from worker.shop.mysql import MySQLSource, mysql_error_code, tls_context
from worker.shop.source import SourceConfigError, SourceMapping, SourceUnavailable

pytestmark = [pytest.mark.mariadb, pytest.mark.timeout(120)]

GRANTS_SQL = Path(__file__).resolve().parents[2] / "sql" / "grants.sql"


# ----------------------------------------------------------------------------------------- helpers

@pytest.fixture
def shop(shop_schema: URL) -> Iterator[sa.Engine]:
    """A root engine on the scratch shop database, playing the shop's own writes."""
    engine = sa.create_engine(shop_schema, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def source(shop_schema: URL) -> Iterator[MySQLSource]:
    src = MySQLSource(shop_schema, connect_timeout=2, read_timeout=5, write_timeout=5)
    yield src
    src.close()


def add_payment(conn: sa.Connection, *, amount: str = "100.00", items: list[tuple] | None = None,
                pid: int | None = None, kind: str = "sale", refund_of: int | None = None) -> int:
    """Insert a payment and its items; ``items`` = [(line_no, name, price, quantity, amount), ...]."""
    res = conn.execute(sa.text(
        "INSERT INTO payments (id, kind, order_ref, refund_of, amount, customer_email, paid_at) "
        "VALUES (:id, :kind, 'ORD-1', :refund_of, :amount, 'buyer@example.ru', '2026-03-02 10:15:00.123456')"),
        {"id": pid, "kind": kind, "refund_of": refund_of, "amount": amount})
    payment_id = pid or res.lastrowid
    for line_no, name, price, qty, line_amount in items or [(1, "Чайник", amount, "1", amount)]:
        conn.execute(sa.text(
            "INSERT INTO payment_items (payment_id, line_no, name, price, quantity, amount, vat) "
            "VALUES (:p, :n, :name, :price, :q, :a, 'vat22')"),
            {"p": payment_id, "n": line_no, "name": name, "price": price, "q": qty, "a": line_amount})
    return int(payment_id)


@pytest.fixture
def ro_url(shop_schema: URL, mariadb_admin_url: URL, run_sql: Callable[..., None]) -> Iterator[URL]:
    """A fresh read-only user made from sql/grants.sql (column-level SELECT only); dropped afterwards."""
    user, password = f"kkt_ro_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    run_sql(mariadb_admin_url, GRANTS_SQL.read_text(encoding="utf-8"),
            ro_user=user, ro_host="127.0.0.1", ro_password=password, shop_db=shop_schema.database)
    try:
        yield shop_schema.set(username=user, password=password)
    finally:
        admin = sa.create_engine(mariadb_admin_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        admin.dispose()


# ----------------------------------------------------------------------------------------- polling

def test_fetch_after_returns_rows_above_cursor_in_id_order_up_to_the_limit(shop, source):
    """Given payments 1..5, when fetching after cursor 1 with limit 3, then 2, 3, 4 come back in order."""
    with shop.connect() as conn:
        ids = [add_payment(conn, amount=f"{n}.00") for n in range(1, 6)]
    assert [p.id for p in source.fetch_after(ids[0], 3)] == ids[1:4]
    assert [p.id for p in source.fetch_after(ids[3], 3)] == ids[4:]
    assert source.fetch_after(ids[-1], 3) == []
    assert source.max_id() == ids[-1]


def test_items_are_attached_to_their_own_payment_ordered_by_line_no(shop, source):
    """Given two payments whose lines were inserted out of order, when fetched, then each payment
    carries exactly its own lines sorted by line_no, and the payment fields are read as stored."""
    with shop.connect() as conn:
        a = add_payment(conn, amount="6.00", items=[(3, "В", "3.00", "1", "3.00"), (1, "А", "1.00", "1", "1.00"),
                                                   (2, "Б", "2.00", "1", "2.00")])
        b = add_payment(conn, amount="5.00", kind="refund", refund_of=a,
                        items=[(1, "Доставка", "5.00", "1", "5.00")])
    pa, pb = source.fetch_after(0, 10)
    assert [(i.line_no, i.name) for i in pa.items] == [(1, "А"), (2, "Б"), (3, "В")]
    assert [i.name for i in pb.items] == ["Доставка"]
    assert (pb.id, pb.kind, pb.refund_of, pb.customer_email) == (b, "refund", a, "buyer@example.ru")
    assert pa.paid_at.microsecond == 123456 and pa.items[0].vat == "vat22"


def test_each_poll_sees_rows_committed_after_the_previous_poll(shop, source):
    """Given a source that already polled, when another connection commits a new payment, then the
    next poll on the same source object sees it (no snapshot survives between polls)."""
    with shop.connect() as conn:
        first = add_payment(conn)
    assert [p.id for p in source.fetch_after(0, 10)] == [first]
    writer = sa.create_engine(shop.url)  # a normal (non-autocommit) shop connection that commits
    with writer.begin() as conn:
        second = add_payment(conn)
    writer.dispose()
    assert [p.id for p in source.fetch_after(0, 10)] == [first, second]
    assert source.max_id() == second


def test_a_repeatable_read_snapshot_held_open_would_hide_the_late_row(shop, shop_schema):
    """Control for the test above: given a plain REPEATABLE READ connection kept in one transaction,
    when a row is committed elsewhere, then it stays invisible — the trap MySQLSource avoids."""
    stale = sa.create_engine(shop_schema, isolation_level="REPEATABLE READ")
    with stale.connect() as reader:
        assert reader.exec_driver_sql("SELECT COUNT(*) FROM payments").scalar() == 0
        with shop.connect() as conn:
            add_payment(conn)
        assert reader.exec_driver_sql("SELECT COUNT(*) FROM payments").scalar() == 0
    stale.dispose()


def test_a_late_commit_below_the_cursor_is_found_by_fetch_by_ids(shop, shop_schema, source):
    """Given T1 holding id N uncommitted while T2 commits N+1, when the poller reads, then it sees only
    N+1; after T1 commits, fetch_by_ids([N]) (the gap recheck) returns N."""
    slow = sa.create_engine(shop_schema)
    with slow.connect() as t1:
        t1.begin()
        late = add_payment(t1)
        with shop.connect() as t2:
            early = add_payment(t2)
        assert early > late
        assert [p.id for p in source.fetch_after(0, 10)] == [early]
        assert source.fetch_by_ids([late]) == []
        t1.commit()
    slow.dispose()
    assert [p.id for p in source.fetch_by_ids([late])] == [late]


def test_fetch_by_ids_returns_existing_rows_once_in_id_order_across_chunks(shop, source):
    """Given payments 5, 1500 and 2600, when asking for 2,600 ids (three chunks, with duplicates and
    missing ids), then exactly the three existing payments come back, ascending, each with items."""
    with shop.connect() as conn:
        for pid in (2600, 5, 1500):
            add_payment(conn, pid=pid)
    found = source.fetch_by_ids(list(range(2600, 0, -1)) + [5, 5])
    assert [p.id for p in found] == [5, 1500, 2600]
    assert all(len(p.items) == 1 for p in found)
    assert source.fetch_by_ids([]) == []


def test_amounts_and_quantities_come_back_as_exact_decimals(shop, source):
    """Given lines of 0.10 and 0.20 and a 0.750 kg weight line, when fetched, then every money and
    quantity value is a Decimal and the sums are exact (no binary float anywhere)."""
    with shop.connect() as conn:
        add_payment(conn, amount="1792.80", items=[
            (1, "Спички", "0.10", "1", "0.10"), (2, "Соль", "0.20", "1", "0.20"),
            (3, "Кофе в зёрнах, на развес", "2390.00", "0.750", "1792.50")])
    (p,) = source.fetch_after(0, 1)
    values = [p.amount] + [v for i in p.items for v in (i.price, i.quantity, i.amount)]
    assert all(type(v) is Decimal for v in values)
    assert p.items[0].amount + p.items[1].amount == Decimal("0.30")
    assert p.items[2].quantity == Decimal("0.750") and str(p.items[2].quantity) == "0.750"
    assert sum(i.amount for i in p.items) == p.amount


def test_a_shop_with_its_own_names_is_read_through_a_mapping(shop, shop_schema):
    """Given a shop whose tables/columns are named differently (and has no kind/phone/unit columns),
    when read with a matching SourceMapping, then the same ShopPayments come back (kind = sale)."""
    with shop.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE `order` (`order_id` BIGINT PRIMARY KEY, `total` DECIMAL(14,2),"
                             " `email` VARCHAR(64), `when` DATETIME(6))")
        conn.exec_driver_sql("CREATE TABLE `line` (`order_id` BIGINT, `pos` INT, `title` VARCHAR(128),"
                             " `cost` DECIMAL(12,2), `qty` DECIMAL(10,3), `sum` DECIMAL(14,2), `tax` VARCHAR(16))")
        conn.exec_driver_sql("INSERT INTO `order` VALUES (7, 12.50, 'a@example.ru', '2026-01-05 09:00:00')")
        conn.exec_driver_sql("INSERT INTO `line` VALUES (7, 2, 'Хлеб', 2.50, 1, 2.50, 'vat10'),"
                             " (7, 1, 'Молоко', 10.00, 1, 10.00, 'vat10')")
    mapping = SourceMapping(
        payments_table="order", payment_id="order_id", payment_kind=None, payment_order_ref=None,
        payment_refund_of=None, payment_amount="total", payment_customer_email="email",
        payment_customer_phone=None, payment_paid_at="when", items_table="line", item_payment_id="order_id",
        item_line_no="pos", item_name="title", item_price="cost", item_quantity="qty", item_amount="sum",
        item_vat="tax", item_payment_method=None, item_payment_subject=None, item_measure_unit=None)
    with open_source(shop_schema, mapping) as src:
        src.ping()
        (p,) = src.fetch_after(0, 10)
    assert (p.id, p.kind, p.amount, p.customer_email, p.customer_phone) == (7, "sale", Decimal("12.50"),
                                                                              "a@example.ru", None)
    assert [(i.line_no, i.name, i.measure_unit) for i in p.items] == [(1, "Молоко", None), (2, "Хлеб", None)]


def test_bytes_that_are_not_utf8_reach_validation_as_bytes_instead_of_crashing(shop, shop_schema):
    """Given a shop storing item names in a VARBINARY column, one valid UTF-8 and one not, when
    fetched, then the valid one is a str and the invalid one is returned as bytes (no exception)."""
    with shop.connect() as conn:
        add_payment(conn, items=[(1, "Чай", "1.00", "1", "1.00"), (2, "x", "1.00", "1", "1.00")])
        conn.exec_driver_sql("ALTER TABLE payment_items ADD COLUMN raw_name VARBINARY(128)")
        conn.execute(sa.text("UPDATE payment_items SET raw_name = :v WHERE line_no = 1"), {"v": "Чай".encode()})
        conn.execute(sa.text("UPDATE payment_items SET raw_name = :v WHERE line_no = 2"), {"v": b"\xff\xfeK"})
    with open_source(shop_schema, SourceMapping(item_name="raw_name")) as src:
        (p,) = src.fetch_after(0, 1)
    assert [i.name for i in p.items] == ["Чай", b"\xff\xfeK"]


# ---------------------------------------------------------------------------------------- security

def test_the_column_granted_read_only_user_suffices_for_everything_the_source_does(shop, ro_url):
    """Given the user from sql/grants.sql, when the source pings, polls, rechecks and asks max_id,
    then everything works — so the source never needs SELECT * or an ungranted column."""
    with shop.connect() as conn:
        ids = [add_payment(conn) for _ in range(3)]
    with open_source(ro_url) as src:
        src.ping()
        assert [p.id for p in src.fetch_after(0, 10)] == ids
        assert [p.id for p in src.fetch_by_ids([ids[1], 999])] == [ids[1]]
        assert src.max_id() == ids[-1]


def test_the_read_only_user_cannot_write_select_star_or_read_other_columns(shop, ro_url):
    """Given the read-only user, when it tries INSERT, SELECT * or an ungranted column, then the
    server refuses (1142 / 1143), and a mapping naming an ungranted column is a SourceConfigError."""
    engine = sa.create_engine(ro_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        for sql, code in (("INSERT INTO payments (order_ref, amount, paid_at) VALUES ('x', 1, NOW())", 1142),
                          ("SELECT * FROM payments", 1142),
                          ("SELECT created_at FROM payments", 1143)):
            with pytest.raises(sa.exc.DBAPIError) as info:
                conn.exec_driver_sql(sql)
            assert mysql_error_code(info.value) == code, sql
    engine.dispose()
    with open_source(ro_url, SourceMapping(payment_order_ref="created_at")) as src:
        with pytest.raises(SourceConfigError, match="1143"):
            src.ping()


def test_the_source_session_is_read_only_even_for_an_account_that_may_write(shop_schema, source):
    """Given a source connected as root, when anything tries to write through its connections, then
    the server refuses: the session is READ ONLY (defence in depth against over-broad grants)."""
    with source._engine.connect() as conn:  # white-box: the engine the source polls with
        with pytest.raises(sa.exc.DBAPIError) as info:
            conn.exec_driver_sql("INSERT INTO payments (order_ref, amount, paid_at) VALUES ('x', 1, NOW())")
    assert mysql_error_code(info.value) == 1792  # cannot execute statement in a READ ONLY transaction


def test_wrong_password_is_a_config_error_whose_message_hides_the_password(ro_url):
    """Given a wrong password, when pinging, then SourceConfigError (1045) and no password in the text."""
    bad = ro_url.set(password="S3cret-wrong-pw")
    with open_source(bad) as src, pytest.raises(SourceConfigError) as info:
        src.ping()
    assert "1045" in str(info.value)
    assert "S3cret-wrong-pw" not in str(info.value) and ro_url.password not in str(info.value)


def test_a_mapping_naming_a_missing_table_or_column_is_a_config_error(shop_schema):
    """Given mappings with a wrong table / column name, when pinging, then SourceConfigError 1146 / 1054."""
    for mapping, code in ((SourceMapping(items_table="order_items"), "1146"), (SourceMapping(item_vat="tax"), "1054")):
        with open_source(shop_schema, mapping) as src, pytest.raises(SourceConfigError, match=code):
            src.ping()


def test_tls_required_against_a_server_without_tls_is_a_config_error_not_plain_text(shop_schema):
    """Given source.tls.required and a server that offers no TLS, the link is refused (2026), never plain."""
    with MySQLSource(shop_schema, tls=tls_context(verify_identity=False)) as src, \
            pytest.raises(SourceConfigError, match="2026"):
        src.ping()


def test_a_missing_ca_file_is_named(tmp_path):
    with pytest.raises(SourceConfigError, match="source.tls"):
        tls_context(ca=str(tmp_path / "no-such-ca.pem"))


# ---------------------------------------------------------------------------------------- failures

def test_a_closed_port_raises_source_unavailable_quickly(shop_schema):
    """Given nothing listening on the port, when polling, then SourceUnavailable within seconds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    started = time.monotonic()
    with open_source(shop_schema.set(port=free_port), connect_timeout=1) as src:
        with pytest.raises(SourceUnavailable, match="2003"):
            src.fetch_after(0, 10)
    assert time.monotonic() - started < 5


def test_a_server_that_accepts_but_never_answers_hits_the_connect_timeout(shop_schema):
    """Given a socket that accepts TCP but never sends the MySQL handshake, when polling with
    connect_timeout=1, then SourceUnavailable after about a second instead of hanging."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_silently() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_silently, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with open_source(shop_schema.set(port=listener.getsockname()[1]), connect_timeout=1) as src:
            with pytest.raises(SourceUnavailable):
                src.fetch_after(0, 10)
        assert time.monotonic() - started < 6
    finally:
        stop.set()
        thread.join(2)
        for s in held:
            s.close()
        listener.close()


def test_a_query_stuck_behind_a_lock_hits_the_read_timeout_and_the_source_recovers(shop, shop_schema):
    """Given another session holding LOCK TABLES … WRITE, when polling with read_timeout=1, then
    SourceUnavailable after ~1 s; once the lock is released the same source polls normally again."""
    with shop.connect() as conn:
        pid = add_payment(conn)
    src = MySQLSource(shop_schema, connect_timeout=2, read_timeout=1)
    locker = sa.create_engine(shop_schema, poolclass=sa.NullPool)
    try:
        with locker.connect() as lock_conn:
            lock_conn.exec_driver_sql("LOCK TABLES payments WRITE, payment_items WRITE")
            started = time.monotonic()
            with pytest.raises(SourceUnavailable, match="2013"):
                src.fetch_after(0, 10)
            assert time.monotonic() - started < 5
            lock_conn.exec_driver_sql("UNLOCK TABLES")
        assert [p.id for p in src.fetch_after(0, 10)] == [pid]
    finally:
        src.close()
        locker.dispose()


def test_a_connection_killed_by_the_server_is_replaced_transparently(shop, source, shop_schema):
    """Given a pooled source connection that the server killed while idle (restart, wait_timeout),
    when polling again, then pre-ping replaces it and the poll succeeds."""
    with shop.connect() as conn:
        pid = add_payment(conn)
    assert [p.id for p in source.fetch_after(0, 10)] == [pid]
    with shop.connect() as conn:
        victims = conn.execute(sa.text(
            "SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"),
            {"db": shop_schema.database}).scalars().all()
        for victim in victims:
            conn.exec_driver_sql(f"KILL {int(victim)}")
    assert victims
    assert [p.id for p in source.fetch_after(0, 10)] == [pid]
