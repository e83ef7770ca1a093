"""Receipt flows end to end: MariaDB shop → real CLI → emulated register journal (the ground truth).

The prepayment flow (fz54-receipts.md §4.5 B): a sale gives a prepayment receipt (1214 = 1, 22/122),
a row in ``deliveries`` the settlement (1214 = 4, 22 %, paid by the prepayment offset 1215); refunds
mirror the stage they refund. Corrections (§5.2) go through the same ledger and lane.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.shop import insert_payment, receipts_by_tag, run_cli, sale_items, write_settings

pytestmark = pytest.mark.acceptance

DELIVERED_AT = dt.datetime(2026, 11, 21, 15, 0, 0)
VAT22, VAT122 = 11, 12          # FFD 1199 codes
FULL_PREPAYMENT, FULL_PAYMENT = 1, 4   # FFD 1214


def setup_run(tmp_path: Path, shop_url: sa.URL, flow: str = "prepayment") -> tuple[Path, Path]:
    reg = tmp_path / "reg"
    settings = write_settings(
        tmp_path / "settings.yaml", source_url=shop_url.render_as_string(hide_password=False),
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", registers=[("kkt1", f"emulator://{reg}?seed=5")],
        receipts={"flow": flow})
    run_cli(settings, "migrate")
    return settings, reg


def insert_delivery(conn: sa.Connection, payment_id: int) -> int:
    res = conn.execute(sa.text("INSERT INTO deliveries (payment_id, delivered_at) VALUES (:p, :d)"),
                       {"p": payment_id, "d": DELIVERED_AT})
    return int(res.lastrowid)


def ledger(tmp_path: Path) -> dict[str, tuple]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT tag, state, stage, total, last_error, corrects_tag, corrects_fiscal_sign FROM receipts")}


def one(docs: dict[str, list[dict]], tag: str) -> dict:
    assert len(docs.get(tag, [])) == 1, f"{tag}: {docs.get(tag)}"
    return docs[tag][0]


def test_prepayment_settlement_and_refunds_end_to_end(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given sales, deliveries (one committed out of id order) and partial refunds before and after
    delivery, when `run --burst` runs, then the journal holds prepayments (1214 = 1, 22/122, card),
    settlements (1214 = 4, 22 %, prepaid) for what was not refunded, and refunds mirroring their stage."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        s1 = insert_payment(conn, sale_items(2, "100.00"))                    # 1: delivered, then refunded
        s2 = insert_payment(conn, sale_items(3, "50.00"))                     # 2: refunded, then delivered
        r3 = insert_payment(conn, [sale_items(1, "50.00")[0]], kind="refund", refund_of=s2)
        s4 = insert_payment(conn, sale_items(1, "300.00"))                    # 4: delivery committed late
        s5 = insert_payment(conn, sale_items(1, "70.00"))                     # 5: delivered in order
        insert_delivery(conn, s1)
    settings, reg = setup_run(tmp_path, shop_schema)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")

    # a delivery whose transaction commits after a later one: an id gap that fills later
    late = eng.connect()
    late_tx = late.begin()
    insert_delivery(late, s4)
    with eng.begin() as conn:
        insert_delivery(conn, s2)
        insert_delivery(conn, s5)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert "F4" not in receipts_by_tag(reg)
    late_tx.commit()
    late.close()
    with eng.begin() as conn:
        r6 = insert_payment(conn, [sale_items(2, "100.00")[1]], kind="refund", refund_of=s1)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")

    docs = receipts_by_tag(reg)
    assert sorted(docs) == sorted(["P1", "P2", "R3", "P4", "P5", "F1", "F2", "F4", "F5", "R6"])
    p1 = one(docs, "P1")
    assert (p1["operation"], p1["total"]) == (1, "200.00")
    assert {(i["method"], i["vat"]) for i in p1["items"]} == {(FULL_PREPAYMENT, VAT122)}
    assert p1["payments"] == [{"type": "electronic", "amount": "200.00"}]
    f1 = one(docs, "F1")
    assert (f1["operation"], f1["total"]) == (1, "200.00")
    assert {(i["method"], i["vat"]) for i in f1["items"]} == {(FULL_PAYMENT, VAT22)}
    assert f1["payments"] == [{"type": "prepaid", "amount": "200.00"}]
    assert f1["fd"] > p1["fd"]
    # refund before delivery mirrors the prepayment; the settlement offsets only what is left
    r3d = one(docs, "R3")
    assert (r3d["operation"], r3d["total"]) == (2, "50.00")
    assert [(i["method"], i["vat"]) for i in r3d["items"]] == [(FULL_PREPAYMENT, VAT122)]
    assert r3d["payments"] == [{"type": "electronic", "amount": "50.00"}]
    f2 = one(docs, "F2")
    assert f2["total"] == "100.00" and [i["name"] for i in f2["items"]] == ["Товар 2", "Товар 3"]
    assert f2["payments"] == [{"type": "prepaid", "amount": "100.00"}]
    # refund after delivery mirrors the settlement
    r6d = one(docs, "R6")
    assert (r6d["operation"], r6d["total"]) == (2, "100.00")
    assert [(i["method"], i["vat"]) for i in r6d["items"]] == [(FULL_PAYMENT, VAT22)]
    assert r6d["payments"] == [{"type": "electronic", "amount": "100.00"}]
    # the late delivery was not lost
    f4 = one(docs, "F4")
    assert f4["total"] == "300.00" and f4["payments"] == [{"type": "prepaid", "amount": "300.00"}]
    rows = ledger(tmp_path)
    assert {t: r[0] for t, r in rows.items()} == {t: "done" for t in docs}
    assert {t: r[1] for t, r in rows.items()}["F1"] == "settlement"
    status = run_cli(settings, "status").stdout
    assert "cursor deliveries: last id 4" in status and "open gaps: 0" in status
    assert (r3, r6) == (3, 6)


def test_delivery_of_an_unknown_payment_is_visible(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a delivery naming a payment the shop does not have (no FK on a shop's own schema), when
    the worker polls, then the row is recorded with the reason naming deliveries.payment_id, and
    the other deliveries flow."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        s1 = insert_payment(conn, sale_items(1))
        conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
        insert_delivery(conn, 999)
        conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))
        insert_delivery(conn, s1)
    settings, reg = setup_run(tmp_path, shop_schema)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert sorted(receipts_by_tag(reg)) == ["F1", "P1"]
    status = run_cli(settings, "status").stdout
    assert "deliveries.payment_id: payment 999 is unknown" in status, status


def test_corrections_missed_and_reverse(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a sale rejected for bad data (it missed its receipt) and a sale fiscalized with a wrong
    price, when the shop fixes the rows and an admin runs `correction missed` and `correction
    reverse`, then the lane issues a self-made correction (1173 = 0, 1178 = the payment date), and
    a reverse correction (opposite 1054, the wrong data) followed by the correct one, both linked to
    the wrong receipt's fiscal sign in the ledger."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        missed = insert_payment(conn, sale_items(1), amount=Decimal("999.00"))
        wrong = insert_payment(conn, sale_items(1, "120.00"))
    settings, reg = setup_run(tmp_path, shop_schema, flow="single")
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert ledger(tmp_path)["S1"][0] == "rejected"
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE payments SET amount = 100.00 WHERE id = :i"), {"i": missed})
        conn.execute(sa.text("UPDATE payments SET amount = 100.00 WHERE id = :i"), {"i": wrong})
        conn.execute(sa.text("UPDATE payment_items SET price = 100.00, amount = 100.00 WHERE payment_id = :i"),
                     {"i": wrong})
    out = run_cli(settings, "correction", "missed", "--id", str(missed), "--yes").stdout
    assert "C1" in out
    out = run_cli(settings, "correction", "reverse", "--id", str(wrong), "--yes").stdout
    assert "C2" in out and "C2.2" in out
    refused = run_cli(settings, "correction", "missed", "--id", str(wrong), "--yes", check=False)
    assert refused.returncode != 0 and "already" in (refused.stdout + refused.stderr)
    assert "has a correction receipt" in run_cli(settings, "resend", "--id", str(missed), "--yes").stdout
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")

    docs = receipts_by_tag(reg)
    s2 = one(docs, "S2")
    c1 = one(docs, "C1")
    assert c1["kind"] == "correction" and c1["operation"] == 1 and c1["total"] == "100.00"
    assert c1["correction"] == {"1173": 0, "1178": "2026-11-20", "1179": ""}
    # both documents of the reverse pair carry the wrong receipt's fiscal sign (ФПД) in 1192
    pair = docs[str(s2["fp"])]
    assert len(pair) == 2
    rev, fix = sorted(pair, key=lambda d: d["fd"])
    assert rev["kind"] == fix["kind"] == "correction"
    assert (rev["operation"], rev["total"], rev["items"]) == (2, "120.00", s2["items"])
    assert (fix["operation"], fix["total"]) == (1, "100.00") and fix["fd"] > rev["fd"]
    assert rev["correction"]["1178"] == fix["correction"]["1178"] == "2026-11-20"
    rows = ledger(tmp_path)
    assert rows["C2"][0] == rows["C2.2"][0] == "done"
    assert rows["C2"][4:] == rows["C2.2"][4:] == ("S2", s2["fp"])


def test_delivery_polled_before_its_payment_ingests_the_payment(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a payment and its delivery, when the deliveries poller runs before the payments poller,
    then the payment comes in with its prepayment and the settlement waits behind it; the payments
    poller then adds nothing twice, and a second delivery row for the same payment changes nothing."""
    from kkt_drivers.receipt import TaxSystem, Vat
    from worker.ingest.planner import DeliveryPlanner, Planner
    from worker.ingest.poller import DeliveryIngestor, Ingestor
    from worker.ledger import migrate
    from worker.ledger.store import Ledger
    from worker.receipts.config import ReceiptConfig
    from worker.shop import open_source

    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        s1 = insert_payment(conn, sale_items(2))
        insert_delivery(conn, s1)
        insert_delivery(conn, s1)
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(led.engine)
    cfg = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://shop.example.ru",
                        flow="prepayment")
    source = open_source(shop_schema.render_as_string(hide_password=False))
    planner = Planner(led, cfg)
    deliveries = DeliveryIngestor(source, led, DeliveryPlanner(led, cfg, source, planner))
    first = deliveries.poll_once()
    assert (first.fetched, first.added, first.cursor) == (2, 1, 2)
    recs = {r.tag: (r.stage, r.state.value) for r in led.list_receipts()}
    assert recs == {"P1": ("prepayment", "queued"), "F1": ("settlement", "queued")}
    assert not led.stage_done(s1, "prepayment")
    payments = Ingestor(source, led, planner).poll_once()
    assert (payments.fetched, payments.added) == (1, 0)
    assert len(led.list_receipts()) == 2
    source.close()

    # the lane holds the settlement while its prepayment is not done
    import threading

    from kkt_drivers import open_driver
    from worker.fiscal.lane import Lane
    from worker.ledger.states import State
    from worker.settings import RetrySettings, ShiftSettings

    lane = Lane("kkt1", open_driver(f"emulator:{tmp_path / 'reg'}"), led, RetrySettings(), ShiftSettings(),
                threading.Event())
    pre = next(r for r in led.list_receipts() if r.tag == "P1")
    from worker.ledger.schema import receipts as receipts_table

    def hold_prepayment(state: State) -> None:  # the test plays an outside hand: no ledger API does this
        with led.write() as conn:
            conn.execute(receipts_table.update().where(receipts_table.c.id == pre.id).values(state=state.value))

    hold_prepayment(State.REJECTED)
    lane.step()   # nothing may be claimed: the settlement waits for its prepayment
    assert {r.tag: r.state.value for r in led.list_receipts()} == {"P1": "rejected", "F1": "queued"}
    hold_prepayment(State.QUEUED)
    import time

    deadline = time.monotonic() + 10   # the held settlement is looked at again after a short pause
    while time.monotonic() < deadline and any(r.state is not State.DONE for r in led.list_receipts()):
        lane.step()
        time.sleep(0.1)
    assert {r.tag: r.state.value for r in led.list_receipts()} == {"P1": "done", "F1": "done"}
    assert [d["tag"] for d in receipts_by_tag(tmp_path / "reg").get("F1", [])] == ["F1"]
