"""Ledger behaviour, identical on SQLite and PostgreSQL: idempotent ingest, gaps, guarded states."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from kkt_drivers.receipt import (
    DocumentKind,
    FiscalDocument,
    Item,
    Operation,
    Payment,
    PaymentType,
    Receipt,
    TaxSystem,
    Vat,
)
from worker.errors import StateConflict
from worker.ledger.schema import ingest_cursor, ingest_gaps, receipts
from worker.ledger.states import State
from worker.ledger.store import Gap, IngestEntry, Ledger, PlannedRow, utcnow
from worker.shop.rows import ShopItem, ShopPayment


def shop_row(source_id: int, amount: str = "150.50") -> ShopPayment:
    return ShopPayment(id=source_id, kind="sale", amount=Decimal(amount), paid_at=dt.datetime(2026, 11, 20, 12),
                       customer_email="a@b.ru",
                       items=(ShopItem(1, "Чай", Decimal(amount), Decimal("1.000"), Decimal(amount), "vat22"),))


def receipt(tag: str, amount: str = "150.50") -> Receipt:
    return Receipt(Operation.SALE, TaxSystem.OSN,
                   (Item("Чай", Decimal(amount), Decimal(1), Decimal(amount), Vat.VAT22),),
                   (Payment(PaymentType.ELECTRONIC, Decimal(amount)),), tag=tag, customer_contact="a@b.ru")


def entry(source_id: int, amount: str = "150.50") -> IngestEntry:
    tag = f"S{source_id}"
    return IngestEntry(shop_row(source_id, amount), (PlannedRow("sale", 1, tag, receipt=receipt(tag, amount)),))


def ingest(ledger: Ledger, entries, cursor: int, expected: int = 0, **kw) -> int:
    return ledger.apply_ingest("payments", cursor=cursor, new_gaps=kw.get("new_gaps", []),
                               filled=kw.get("filled", []), expired=kw.get("expired", []), entries=entries,
                               now=kw.get("now", utcnow()), expected_cursor=expected)


def doc(fd: int, tag: str, total: str = "150.50") -> FiscalDocument:
    return FiscalDocument(fd, 123456789, "9999078900000001", DocumentKind.RECEIPT, dt.datetime(2026, 11, 21, 10),
                          3, 7, Operation.SALE, Decimal(total), tag)


def test_ingest_is_idempotent_by_source_id(ledger: Ledger) -> None:
    """Given rows ingested once, when the same rows are ingested again, then nothing is added twice."""
    assert ingest(ledger, [entry(1), entry(2)], cursor=2) == 2
    assert ledger.add_payments([entry(1), entry(2), entry(3)]) == 1
    assert ledger.counts() == {"queued": 3}
    assert ledger.ingest_position("payments")[0] == 2


def test_money_round_trips_exactly(ledger: Ledger) -> None:
    """Amounts come back as the same Decimal, never float."""
    ingest(ledger, [entry(1, "0.10"), entry(2, "42949672.95")], cursor=2)
    totals = [r.total for r in ledger.list_receipts()]
    assert totals == [Decimal("0.10"), Decimal("42949672.95")]
    assert all(type(t) is Decimal for t in totals)
    assert ledger.payment_snapshot(2).amount == Decimal("42949672.95")


def test_cursor_guard_refuses_a_racing_ingest(ledger: Ledger) -> None:
    """Given the cursor moved, when another ingest commits with the old cursor, then it is refused whole."""
    ingest(ledger, [entry(1)], cursor=1)
    with pytest.raises(StateConflict):
        ingest(ledger, [entry(2)], cursor=2, expected=0)
    assert ledger.counts() == {"queued": 1}


def test_gaps_are_kept_filled_and_expired(ledger: Ledger) -> None:
    """Gaps open in the same transaction as rows; a filled gap is removed; an expired one is logged."""
    t0 = dt.datetime(2026, 11, 21, 10)
    ingest(ledger, [entry(1), entry(4)], cursor=4, new_gaps=[2, 3], now=t0)
    cursor, gaps = ledger.ingest_position("payments")
    assert cursor == 4 and [g.id for g in gaps] == [2, 3]
    ingest(ledger, [entry(3)], cursor=4, expected=4, filled=[3], expired=[Gap(2, t0)], now=t0)
    cursor, gaps = ledger.ingest_position("payments")
    assert gaps == []
    details = ledger.status_details()
    assert [g["id"] for g in details["expired_gaps"]] == [2]
    assert ledger.counts() == {"queued": 3}


def test_each_poll_counts_one_recheck_of_the_gaps_opened_before_it(ledger: Ledger) -> None:
    """Given gaps opened by earlier polls, when a poll commits, then each of them counts one recheck at the
    poll's time (not the gaps that poll opens), and the cursor records that time."""
    t0 = dt.datetime(2026, 11, 21, 10)
    t1, t2 = t0 + dt.timedelta(seconds=1), t0 + dt.timedelta(seconds=2)
    ingest(ledger, [entry(1), entry(3)], cursor=3, new_gaps=[2], now=t0)
    ingest(ledger, [entry(6)], cursor=6, expected=3, new_gaps=[4, 5], now=t1)
    ingest(ledger, [entry(7)], cursor=7, expected=6, now=t2)
    with ledger.engine.connect() as c:
        gaps = c.execute(select(ingest_gaps.c.id, ingest_gaps.c.checks, ingest_gaps.c.last_checked_at)
                         .order_by(ingest_gaps.c.id)).all()
        moved = c.execute(select(ingest_cursor.c.last_id, ingest_cursor.c.updated_at)).one()
    assert [tuple(g) for g in gaps] == [(2, 2, t2), (4, 1, t2), (5, 1, t2)]
    assert tuple(moved) == (7, t2)

def test_intent_then_done_is_compare_and_set(ledger: Ledger) -> None:
    """queued → sending → done; a second intent on the same receipt is refused (no double send)."""
    ingest(ledger, [entry(1)], cursor=1)
    rec = ledger.due(utcnow())[0]
    attempt = ledger.record_intent(rec.id, register="kkt1", fn_serial="FN1", fd_before=10)
    with pytest.raises(StateConflict):
        ledger.record_intent(rec.id, register="kkt2", fn_serial="FN1", fd_before=10)
    assert [r.tag for r in ledger.sending("kkt1")] == ["S1"]
    ledger.record_done(rec.id, doc(11, "S1"), attempt_id=attempt)
    done = ledger.get(rec.id)
    assert done.state is State.DONE and done.fd_number == 11 and done.qr.startswith("t=20261121T1000&s=150.50")
    with pytest.raises(StateConflict):
        ledger.record_done(rec.id, doc(12, "S1"), attempt_id=None)
    assert [a["outcome"] for a in ledger.attempts_of(rec.id)] == ["done"]


def test_unfinished_means_queued_or_sending(ledger: Ledger) -> None:
    """`run --burst` stops when nothing is queued or sending: done and failed receipts are finished."""
    assert not ledger.has_unfinished()
    ingest(ledger, [entry(1), entry(2)], cursor=2)
    assert ledger.has_unfinished()                    # queued
    first, second = ledger.due(utcnow())
    ledger.record_intent(first.id, register="kkt1", fn_serial="FN1", fd_before=1)
    with ledger.write() as conn:
        conn.execute(update(receipts).where(receipts.c.id == second.id).values(state=State.FAILED.value))
    assert ledger.has_unfinished()                    # one sending, one failed
    ledger.record_done(first.id, doc(2, "S1"), attempt_id=None)
    assert not ledger.has_unfinished()                # one done, one failed
    assert ledger.counts() == {"done": 1, "failed": 1}


def test_retry_burns_attempts_until_failed(ledger: Ledger) -> None:
    """Transient failures count; the last one makes the receipt failed. Device errors don't count.
    The ledger records what decide() decided."""
    from kkt_drivers.errors import DeviceStateError, TransientError
    from worker.fiscal.retry import decide
    from worker.settings import RetrySettings

    policy = RetrySettings(max_attempts=2)
    ingest(ledger, [entry(1)], cursor=1)
    rec = ledger.due(utcnow())[0]
    for error, expect in ((DeviceStateError("paper"), State.QUEUED), (TransientError("link"), State.QUEUED),
                          (TransientError("link"), State.FAILED)):
        a = ledger.record_intent(rec.id, register="kkt1", fn_serial="FN1", fd_before=1)
        d = decide(error, ledger.get(rec.id).attempts, policy, now=utcnow() + dt.timedelta(hours=1))
        new = ledger.record_retry(rec.id, attempt_id=a, new=d.state, attempts=d.attempts, next_attempt_at=d.when,
                                  error="x", error_class=d.reaction.value)
        assert new is expect
        if new is State.QUEUED:
            assert ledger.due(utcnow()) == []          # not before next_attempt_at
            ledger.engine.dispose()
            with ledger.write() as conn:               # make it due again for the next round
                conn.exec_driver_sql("UPDATE receipts SET next_attempt_at = '2000-01-01 00:00:00'")
    assert ledger.get(rec.id).attempts == 2
    assert len(ledger.attempts_of(rec.id)) == 3


def test_replan_requeues_rejected_and_never_touches_done(ledger: Ledger) -> None:
    """An admin resend rebuilds rejected receipts; a done receipt of the same payment stays as it is."""
    bad = IngestEntry(shop_row(1), (PlannedRow("sale", 1, "S1", error="payment_items[0].vat: bad"),))
    ingest(ledger, [bad, entry(2)], cursor=2)
    assert ledger.counts() == {"queued": 1, "rejected": 1}
    rec2 = [r for r in ledger.due(utcnow()) if r.source_id == 2][0]
    a = ledger.record_intent(rec2.id, register="kkt1", fn_serial="FN1", fd_before=1)
    ledger.record_done(rec2.id, doc(2, "S2"), attempt_id=a)
    assert ledger.replan(1, shop_row(1), [PlannedRow("sale", 1, "S1", receipt=receipt("S1"))]) == 1
    assert ledger.replan(2, shop_row(2), [PlannedRow("sale", 1, "S2", receipt=receipt("S2"))]) == 0
    assert ledger.counts() == {"queued": 1, "done": 1}


def test_refunded_quantities_sum_other_refunds(ledger: Ledger) -> None:
    """Quantities refunded by earlier refund rows are summed per original line."""
    ingest(ledger, [entry(1)], cursor=1)
    refund = ShopPayment(id=2, kind="refund", amount=Decimal("50"), paid_at=dt.datetime(2026, 11, 21), refund_of=1,
                         items=(ShopItem(1, "Чай", Decimal("50"), Decimal("0.500"), Decimal("25"), "vat22"),))
    ledger.add_payments([IngestEntry(refund, (PlannedRow("refund", 1, "R2", receipt=receipt("R2", "25")),))])
    assert ledger.refunded_quantities(1) == {1: Decimal("0.500")}
    assert ledger.refunded_quantities(1, excluding=2) == {}


def test_a_reader_opens_the_ledger_read_only_and_cannot_write(ledger: Ledger) -> None:
    """Read commands: the same rows, and any write refused by the database itself."""
    ledger.add_payments([entry(1)])
    reader = Ledger(ledger.url, read_only=True)
    try:
        assert [r.tag for r in reader.list_receipts()] == ["S1"]
        with pytest.raises(Exception, match="(?i)read.?only"):
            reader.add_payments([entry(2)])
    finally:
        reader.dispose()


def test_list_pages_searches_and_counts(ledger: Ledger) -> None:
    ledger.add_payments([entry(i) for i in range(1, 8)])
    assert ledger.count_receipts() == 7
    page = ledger.list_receipts(limit=3, offset=3)
    assert [r.source_id for r in page] == [4, 5, 6]
    assert [r.tag for r in ledger.list_receipts(search="S5")] == ["S5"]
    assert [r.source_id for r in ledger.list_receipts(search="6")] == [6]
    day = dt.date(2026, 11, 20)     # entry()'s paid_at; nothing is fiscalized yet
    assert ledger.count_receipts(day_from=day, day_to=day) == 7
    assert ledger.count_receipts(day_from=day + dt.timedelta(days=1)) == 0
