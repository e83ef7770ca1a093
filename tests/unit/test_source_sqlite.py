"""SQLiteSource, SourceMapping, open_source and the demo shop (no server needed)."""
from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from worker.demo import DemoLine, add_demo_payment, create_demo_shop
from worker.shop import open_source
from worker.shop.rows import ShopPayment
from worker.shop.source import SourceConfigError, SourceMapping, SourceUnavailable
from worker.shop.sqlite import SQLiteSource

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    create_demo_shop(path)
    return path


@pytest.fixture
def demo(demo_path: Path) -> SQLiteSource:
    src = open_source(f"sqlite:///{demo_path}")
    assert isinstance(src, SQLiteSource)
    yield src
    src.close()


# ------------------------------------------------------------------------------------- demo shop

def test_demo_shop_has_sales_and_one_refund_of_an_earlier_sale_line(demo):
    """Given a demo shop of 12 sales, when read, then 13 payments come back: 12 sales and a refund
    whose single line is the first line of the sale it references, with matching amounts."""
    payments = demo.fetch_after(0, 100)
    assert [p.kind for p in payments] == ["sale"] * 12 + ["refund"]
    refund = payments[-1]
    sale = next(p for p in payments if p.id == refund.refund_of)
    assert refund.items[0].name == sale.items[0].name and refund.items[0].amount == sale.items[0].amount
    assert refund.amount == refund.items[0].amount


def test_demo_rows_are_realistic_and_consistent(demo):
    """Given the demo shop, when read, then every payment totals its lines, dates are in 2026, VAT 22 %
    is used, a 0.750 kg weight line and a "Доставка" service line exist, and every payment has an
    e-mail or a phone for the electronic receipt."""
    payments = demo.fetch_after(0, 100)
    lines = [i for p in payments for i in p.items]
    assert all(p.amount == sum(i.amount for i in p.items) for p in payments)
    assert all(p.paid_at.year == 2026 for p in payments)
    assert {i.vat for i in lines} >= {"vat22"}
    assert any(i.quantity == Decimal("0.750") and i.measure_unit == "kg" for i in lines)
    assert any(i.name == "Доставка" and i.payment_subject == "service" for i in lines)
    assert all(p.customer_email or p.customer_phone for p in payments)
    assert all(i.amount == (i.price * i.quantity).quantize(Decimal("0.01")) for i in lines)


def test_create_demo_shop_refuses_to_overwrite_unless_asked(demo_path):
    """Given an existing demo file, when created again, then FileExistsError; with overwrite, a new shop."""
    with pytest.raises(FileExistsError):
        create_demo_shop(demo_path)
    create_demo_shop(demo_path, n_sales=3, overwrite=True)
    with SQLiteSource(demo_path) as src:
        assert src.max_id() == 4  # 3 sales + the refund


def test_a_payment_added_while_polling_appears_on_the_next_poll(demo, demo_path):
    """Given a source that has read everything, when add_demo_payment appends a sale, then the next
    poll on the same source object returns exactly that sale."""
    last = demo.max_id()
    assert demo.fetch_after(last, 10) == []
    new_id = add_demo_payment(demo_path, [DemoLine("Пакет", Decimal("9.99"), Decimal("3"))], phone="+79990001122")
    (p,) = demo.fetch_after(last, 10)
    assert (p.id, p.amount, p.customer_phone) == (new_id, Decimal("29.97"), "+79990001122")
    assert p.items[0].quantity == Decimal("3.000")


# ----------------------------------------------------------------------------------- the source

def test_fetch_after_pages_by_cursor_and_limit_with_items_in_line_order(demo):
    """Given 13 demo payments, when paging with limit 5, then pages of 5, 5, 3 in id order, each
    payment's items ordered by line_no."""
    pages, cursor = [], 0
    while batch := demo.fetch_after(cursor, 5):
        pages.append([p.id for p in batch])
        cursor = batch[-1].id
        assert all([i.line_no for i in p.items] == sorted(i.line_no for i in p.items) for p in batch)
    assert pages == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13]]


def test_fetch_by_ids_returns_only_existing_ids_sorted_over_many_chunks(demo):
    """Given ids 1..13, when asking for 0..2999 reversed plus duplicates, then 1..13 once each, sorted."""
    found = demo.fetch_by_ids(list(range(2999, -1, -1)) + [3, 3])
    assert [p.id for p in found] == list(range(1, 14))
    assert demo.fetch_by_ids([]) == []


def test_rows_round_trip_through_the_ledger_json_snapshot(demo):
    """Given fetched payments, when serialized with to_json/from_json, then they are equal (Decimals kept)."""
    for p in demo.fetch_after(0, 100):
        assert ShopPayment.from_json(p.to_json()) == p


def test_bad_utf8_text_comes_back_as_bytes_and_float_money_is_refused(tmp_path):
    """Given a shop with a non-UTF-8 item name, when read, then the name is bytes (validation will
    reject it by field); given a REAL money column, then SourceConfigError instead of a float."""
    path = tmp_path / "odd.db"
    create_demo_shop(path, n_sales=1)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE payment_items SET name = CAST(x'4b6f66ff' AS TEXT)")
        conn.execute("ALTER TABLE payments ADD COLUMN amount_real REAL")
        conn.execute("UPDATE payments SET amount_real = 0.1")
    conn.close()
    with SQLiteSource(path) as src:
        assert src.fetch_after(0, 1)[0].items[0].name == b"Kof\xff"
    with SQLiteSource(path, SourceMapping(payment_amount="amount_real")) as src:
        with pytest.raises(SourceConfigError, match="float"):
            src.fetch_after(0, 1)


def test_the_source_opens_the_file_read_only(demo, demo_path):
    """Given a source, when anything writes through its connections, then SQLite refuses (mode=ro)."""
    with demo._engine.connect() as conn:  # white-box: the engine the source polls with
        with pytest.raises(Exception, match="readonly"):
            conn.exec_driver_sql("DELETE FROM payments")
    assert demo.max_id() == 13


def test_a_missing_file_or_table_is_a_config_error(tmp_path, demo_path):
    """Given a path that does not exist or a mapping to an absent table, when pinging, then SourceConfigError."""
    with SQLiteSource(tmp_path / "nope.db") as src, pytest.raises(SourceConfigError, match="unable to open"):
        src.ping()
    assert not (tmp_path / "nope.db").exists()  # read-only: nothing created
    with SQLiteSource(demo_path, SourceMapping(items_table="lines")) as src:
        with pytest.raises(SourceConfigError, match="no such table"):
            src.ping()


def test_a_locked_database_is_unavailable_not_a_config_error(demo_path):
    """Given a writer holding an exclusive lock, when polling with a short busy timeout, then
    SourceUnavailable (retry later); after the writer finishes, polling works."""
    writer = sqlite3.connect(demo_path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        with SQLiteSource(demo_path, busy_timeout=0.2) as src:
            with pytest.raises(SourceUnavailable, match="locked"):
                src.fetch_after(0, 1)
            writer.execute("ROLLBACK")
            assert len(src.fetch_after(0, 1)) == 1
    finally:
        writer.close()


def test_fetch_after_rejects_a_negative_cursor_or_a_zero_limit(demo):
    """Given bad arguments, when calling fetch_after, then ValueError before any query."""
    for cursor, limit in ((-1, 10), (0, 0), (True, 10)):
        with pytest.raises(ValueError):
            demo.fetch_after(cursor, limit)


# ------------------------------------------------------------------------- mapping / open_source

@pytest.mark.parametrize("field, value", [
    ("payments_table", "payments; DROP TABLE payments"), ("item_name", "name`"), ("payment_id", "1id"),
    ("payment_id", None), ("items_table", ""), ("item_vat", 'vat"'), ("payments_table", "payments\n"),
])
def test_mapping_rejects_anything_but_plain_identifiers(field, value):
    """Given a non-identifier (or None for a required column), when building a mapping, then
    SourceConfigError naming the field."""
    with pytest.raises(SourceConfigError, match=field):
        SourceMapping(**{field: value})


def test_mapping_accepts_none_for_optional_columns():
    """Given None for optional columns, when building a mapping, then it is accepted."""
    SourceMapping(payment_kind=None, payment_customer_phone=None, item_measure_unit=None)


@pytest.mark.parametrize("url", [
    "postgresql://u:topsecret@db/shop", "mysql+mysqldb://u:topsecret@db/shop", "sqlite://", "not a url",
])
def test_open_source_rejects_unsupported_urls_without_showing_the_password(url):
    """Given an unsupported or incomplete URL, when opening, then SourceConfigError without the password."""
    with pytest.raises(SourceConfigError) as info:
        open_source(url)
    assert "topsecret" not in str(info.value)


def test_open_source_passes_unknown_options_loudly(demo_path):
    """Given an option the backend does not have, when opening, then TypeError naming it."""
    with pytest.raises(TypeError, match="read_timeout"):
        open_source(f"sqlite:///{demo_path}", read_timeout=3)
