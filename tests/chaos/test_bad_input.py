"""Scenario 6: generated bad rows on real MariaDB (a sloppy shop schema that lets anything in).

The worker never crashes or stalls; each bad row ends "rejected" with a message naming the field;
good rows around it are fiscalized, exactly once.
"""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kkt_drivers import open_driver
from kkt_drivers.receipt import TaxSystem, Vat
from tests.chaos.invariants import check
from worker.fiscal.lane import Lane
from worker.ingest.planner import Planner
from worker.ingest.poller import Ingestor
from worker.ledger import migrate
from worker.ledger.store import Ledger
from worker.receipts.config import ReceiptConfig
from worker.settings import RetrySettings, ShiftSettings
from worker.shop import open_source

pytestmark = pytest.mark.chaos

LAX_SCHEMA = """
CREATE TABLE payments (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(16) NULL,
  order_ref VARCHAR(64) NULL, refund_of BIGINT UNSIGNED NULL, amount DECIMAL(24,4) NULL,
  customer_email VARBINARY(200) NULL, customer_phone VARCHAR(40) NULL, paid_at DATETIME(6) NULL);
CREATE TABLE payment_items (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, payment_id BIGINT UNSIGNED,
  line_no INT NULL, name VARBINARY(400) NULL, price DECIMAL(24,4) NULL, quantity DECIMAL(24,4) NULL,
  amount DECIMAL(24,4) NULL, vat VARCHAR(32) NULL, payment_method VARCHAR(24) NULL,
  payment_subject VARCHAR(24) NULL, measure_unit VARCHAR(8) NULL)
"""
CFG = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://shop.example.ru")
GOOD = {"kind": "sale", "email": b"ok@example.ru", "phone": None, "paid_at": "2026-11-20 12:00:00",
        "items": [{"name": "Чай".encode(), "price": Decimal("10.00"), "quantity": Decimal("2"),
                   "amount": Decimal("20.00"), "vat": "vat22"}]}

money = st.one_of(st.none(), st.decimals(min_value=-1000, max_value=10**12, places=4, allow_nan=False))
item = st.fixed_dictionaries({
    "name": st.one_of(st.none(), st.binary(max_size=300), st.text(max_size=200).map(lambda s: s.encode())),
    "price": money, "quantity": money, "amount": money,
    "vat": st.one_of(st.none(), st.sampled_from(["vat22", "vat20", "vat18", "22%", "bogus", "", "vat122"])),
})
bad_row = st.fixed_dictionaries({
    "kind": st.one_of(st.none(), st.sampled_from(["sale", "refund", "gift", ""])),
    "amount": money,
    "email": st.one_of(st.none(), st.sampled_from([b"a@b", b"not-an-email", b"\xff\xfe@x.ru", b"ok@example.ru",
                                                   b"x" * 70 + b"@example.ru"])),
    "phone": st.one_of(st.none(), st.sampled_from(["+7 912", "8 (912) 345-67-89", "abc", "+79123456789123"])),
    "paid_at": st.one_of(st.none(), st.just("2026-11-20 12:00:00"), st.just("2025-06-01 10:00:00")),
    "items": st.lists(item, max_size=3),
})


def insert(conn: sa.Connection, row: dict) -> int:
    amount = row.get("amount", sum((i["amount"] or 0 for i in row["items"]), Decimal(0)))
    pid = conn.execute(sa.text("INSERT INTO payments (kind, order_ref, amount, customer_email, customer_phone, "
                               "paid_at) VALUES (:k, 'X', :a, :e, :p, :t)"),
                       {"k": row["kind"], "a": amount, "e": row["email"], "p": row["phone"],
                        "t": row["paid_at"]}).lastrowid
    for n, it in enumerate(row["items"]):
        conn.execute(sa.text("INSERT INTO payment_items (payment_id, line_no, name, price, quantity, amount, vat) "
                             "VALUES (:pid, :n, :name, :price, :q, :amount, :vat)"),
                     {"pid": pid, "n": n + 1, "name": it["name"], "price": it["price"], "q": it["quantity"],
                      "amount": it["amount"], "vat": it["vat"]})
    return int(pid)


@pytest.fixture
def lax_shop(mariadb_url: sa.URL) -> sa.URL:
    with sa.create_engine(mariadb_url).begin() as conn:
        for stmt in LAX_SCHEMA.split(";"):
            conn.exec_driver_sql(stmt)
    return mariadb_url


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(bad_row, min_size=1, max_size=4))
def test_bad_rows_are_rejected_by_field_and_good_rows_flow(lax_shop: sa.URL, tmp_path_factory, rows) -> None:
    tmp = tmp_path_factory.mktemp("bad")
    eng = sa.create_engine(lax_shop)
    with eng.begin() as conn:
        conn.exec_driver_sql("DELETE FROM payment_items")
        conn.exec_driver_sql("DELETE FROM payments")
        good_ids = [insert(conn, GOOD)]
        for r in rows:
            insert(conn, r)
        good_ids.append(insert(conn, GOOD))
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    migrate.upgrade(ledger.engine)
    ing = Ingestor(open_source(lax_shop.render_as_string(hide_password=False)), ledger, Planner(ledger, CFG))
    ing.poll_once()
    lane = Lane("kkt1", open_driver(f"emulator://{tmp / 'reg'}?fsync=0"), ledger,
                RetrySettings(device_pause_s=0.01), ShiftSettings(), threading.Event())
    for _ in range(40):
        lane.step()
        if lane.idle:
            break
    assert lane.idle, "the lane must drain, not stall"
    recs = {r.source_id: r for r in ledger.list_receipts()}
    assert all(recs[i].state.value == "done" for i in good_ids)
    for r in recs.values():
        assert r.state.value in ("done", "rejected"), (r.state, r.last_error)
        if r.state.value == "rejected":
            field = r.last_error.split(":", 1)[0]
            assert field.startswith(("payments", "payment_items", "original")) and len(r.last_error) > len(field) + 2
            assert "\\xff" not in r.last_error and "not-an-email" not in r.last_error
    report = check(lax_shop, ledger.url, [tmp / "reg"])
    assert report.duplicates == [] and report.orphans == [] and report.lost == [] and report.mismatched == []
    ledger.dispose()
