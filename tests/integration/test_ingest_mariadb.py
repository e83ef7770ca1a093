"""Ingest on the real MariaDB: cursor, batches, out-of-order commits, rolled-back ids as gaps."""
from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from kkt_drivers.receipt import TaxSystem
from tests.shop import insert_payment, sale_items
from worker.ingest.planner import Planner
from worker.ingest.poller import Ingestor
from worker.ledger import migrate
from worker.ledger.store import Ledger
from worker.receipts.config import ReceiptConfig
from worker.receipts.rules import Vat
from worker.shop import open_source

CFG = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://shop.example.ru")


class Clock:
    """A clock the test moves by hand (gap expiry is measured from each gap's first sighting)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 21, 10, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now


def make(shop_url: sa.URL, tmp_path: Path, **kw) -> tuple[Ingestor, Ledger, Clock]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(ledger.engine)
    clock = Clock()
    source = open_source(shop_url.render_as_string(hide_password=False))
    return Ingestor(source, ledger, Planner(ledger, CFG), clock=clock, **kw), ledger, clock


def ledger_ids(ledger: Ledger) -> list[int]:
    return sorted({r.source_id for r in ledger.list_receipts()})


def test_polls_past_the_cursor_in_batches(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given 7 committed rows and a batch of 3, when polling, then 3+3+1 rows arrive and none twice."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        for _ in range(7):
            insert_payment(conn, sale_items(2))
    ing, ledger, _ = make(shop_schema, tmp_path, batch_size=3)
    fetched = [ing.poll_once().fetched for _ in range(4)]
    assert fetched == [3, 3, 1, 0]
    assert ledger_ids(ledger) == list(range(1, 8))
    assert ledger.ingest_position("payments") == (7, [])
    assert ledger.counts() == {"queued": 7}


def test_out_of_order_commit_is_not_skipped(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Two connections: A inserts id 1 and holds its transaction, B inserts id 2 and commits.

    The poller sees only 2 and moves the cursor past 1; when A commits, the gap recheck finds 1.
    """
    eng = sa.create_engine(shop_schema, poolclass=sa.NullPool)
    ing, ledger, _ = make(shop_schema, tmp_path)
    a = eng.connect()
    ta = a.begin()
    id_a = insert_payment(a, sale_items(1))
    with eng.begin() as b:
        id_b = insert_payment(b, sale_items(3))
    assert id_a < id_b
    first = ing.poll_once()
    assert ledger_ids(ledger) == [id_b] and first.new_gaps == 1
    assert [g.id for g in ledger.ingest_position("payments")[1]] == [id_a]
    ta.commit()
    a.close()
    second = ing.poll_once()
    assert second.filled_gaps == 1
    assert ledger_ids(ledger) == [id_a, id_b]
    assert ledger.ingest_position("payments")[1] == []


def test_rolled_back_id_expires_as_gap_after_its_grace_period(shop_schema: sa.URL, tmp_path: Path) -> None:
    """A rolled-back insert leaves an id that never appears: it stays a gap until its timeout, then expires."""
    eng = sa.create_engine(shop_schema, poolclass=sa.NullPool)
    ing, ledger, clock = make(shop_schema, tmp_path, gap_timeout_s=600)
    with eng.connect() as c:
        t = c.begin()
        rolled = insert_payment(c, sale_items(1))
        t.rollback()
    with eng.begin() as c:
        kept = insert_payment(c, sale_items(1))
    ing.poll_once()
    assert [g.id for g in ledger.ingest_position("payments")[1]] == [rolled]
    clock.now += dt.timedelta(seconds=599)
    assert ing.poll_once().expired_gaps == 0
    clock.now += dt.timedelta(seconds=2)
    assert ing.poll_once().expired_gaps == 1
    details = ledger.status_details()
    assert details["open_gaps"] == [] and [g["id"] for g in details["expired_gaps"]] == [rolled]
    assert ledger_ids(ledger) == [kept]


def test_bad_row_is_rejected_with_the_field_and_good_rows_flow(shop_schema: sa.URL, tmp_path: Path) -> None:
    """A row whose item sum is wrong is recorded as rejected naming the field; its neighbours are queued."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        insert_payment(conn, sale_items(1))
        items = sale_items(2)
        items[1]["vat"] = "vat18"
        insert_payment(conn, items)
        insert_payment(conn, sale_items(1))
    ing, ledger, _ = make(shop_schema, tmp_path)
    ing.poll_once()
    by_id = {r.source_id: r for r in ledger.list_receipts()}
    assert [by_id[i].state.value for i in (1, 2, 3)] == ["queued", "rejected", "queued"]
    assert "vat" in by_id[2].last_error and "payment_items" in by_id[2].last_error


def test_select_only_user_suffices(shop_schema: sa.URL, tmp_path: Path, run_sql) -> None:
    """The read-only user from sql/grants.sql (column-level SELECT) is enough for ingest."""
    repo = Path(__file__).resolve().parents[2]
    user = f"kkt_ro_{secrets.token_hex(4)}"
    admin = shop_schema.set(database=None)
    run_sql(admin, (repo / "sql" / "grants.sql").read_text(), ro_user=user, ro_host="%", ro_password="pw",
            shop_db=shop_schema.database)
    try:
        with sa.create_engine(shop_schema).begin() as conn:
            insert_payment(conn, sale_items(2))
        ro_url = shop_schema.set(username=user, password="pw")
        ing, ledger, _ = make(ro_url, tmp_path)
        ing.poll_once()
        assert ledger.counts() == {"queued": 1}
    finally:
        run_sql(admin, f"DROP USER IF EXISTS '{user}'@'%'")


def test_order_discount_column_is_spread_over_the_lines(shop_schema: sa.URL, tmp_path: Path) -> None:
    """A shop with an order-level discount column maps it; the receipt spreads it over the lines exactly."""
    from worker.shop.source import SourceMapping

    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE payments ADD COLUMN coupon DECIMAL(14,2) NULL")
        pid = insert_payment(conn, sale_items(1, "100.00") + [dict(sale_items(1, "200.00")[0], line_no=2)],
                             amount=Decimal("270.00"))
        conn.execute(sa.text("UPDATE payments SET coupon = 30.00 WHERE id = :i"), {"i": pid})
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(ledger.engine)
    source = open_source(shop_schema.render_as_string(hide_password=False), SourceMapping(payment_discount="coupon"))
    Ingestor(source, ledger, Planner(ledger, CFG)).poll_once()
    rec = ledger.list_receipts()[0]
    receipt = rec.receipt()
    assert rec.state.value == "queued" and receipt.total == Decimal("270.00")
    assert [i.amount for i in receipt.items] == [Decimal("90.00"), Decimal("180.00")] and receipt.problems() == []


def test_row_committed_after_its_gap_expired_is_caught_by_the_sweep(shop_schema: sa.URL, tmp_path: Path) -> None:
    """A transaction held open longer than the gap timeout: its gap expires, the poll never looks back,
    the anti-entropy sweep finds the row and ingests it."""
    eng = sa.create_engine(shop_schema, poolclass=sa.NullPool)
    ing, ledger, clock = make(shop_schema, tmp_path, gap_timeout_s=60)
    slow = eng.connect()
    tx = slow.begin()
    late_id = insert_payment(slow, sale_items(1))
    with eng.begin() as c:
        insert_payment(c, sale_items(1))
    ing.poll_once()
    clock.now += dt.timedelta(seconds=61)
    assert ing.poll_once().expired_gaps == 1
    tx.commit()
    slow.close()
    assert ing.poll_once().fetched == 0 and late_id not in ledger_ids(ledger)
    assert ing.sweep(window=1000) == 1
    assert late_id in ledger_ids(ledger) and ing.sweep(window=1000) == 0


def test_refund_of_a_late_sale_is_rebuilt_when_the_sale_arrives(shop_schema: sa.URL, tmp_path: Path) -> None:
    """The sale's transaction commits after its refund's: the refund is first rejected (its sale is not in
    the ledger), and rebuilt and queued by itself as soon as the gap recheck brings the sale in."""
    eng = sa.create_engine(shop_schema, poolclass=sa.NullPool)
    ing, ledger, _ = make(shop_schema, tmp_path)
    slow = eng.connect()
    tx = slow.begin()
    sale_id = insert_payment(slow, sale_items(2))
    with eng.begin() as c:
        c.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")   # the shop's refund row may name the uncommitted sale
        insert_payment(c, [dict(sale_items(1)[0])], kind="refund", refund_of=sale_id)
    ing.poll_once()
    refund = ledger.list_receipts()[0]
    assert refund.state.value == "rejected" and "not in the ledger yet" in refund.last_error
    tx.commit()
    slow.close()
    ing.poll_once()
    states = {r.tag: r.state.value for r in ledger.list_receipts()}
    assert states == {f"S{sale_id}": "queued", f"R{sale_id + 1}": "queued"}
