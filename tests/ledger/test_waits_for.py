"""Receipts that wait for another receipt are held back by the due query itself (waits_for_* columns),
and a replan changes states only through the guarded transitions, never deleting history."""
from __future__ import annotations

import dataclasses

from kkt_drivers.receipt import Operation, PaymentMethod
from tests.ledger.test_ledger import doc, entry, ingest, receipt, shop_row
from worker.ledger.states import State
from worker.ledger.store import IngestEntry, Ledger, PlannedRow, utcnow


def finish(ledger: Ledger, tag: str, fd: int) -> None:
    rec = [r for r in ledger.list_receipts() if r.tag == tag][0]
    a = ledger.record_intent(rec.id, register="kkt1", fn_serial="FN1", fd_before=fd - 1)
    ledger.record_done(rec.id, doc(fd, tag), attempt_id=a)


def due_tags(ledger: Ledger) -> list[str]:
    return [r.tag for r in ledger.due(utcnow(), limit=100)]


def test_settlement_is_not_due_until_its_prepayment_is_done(ledger: Ledger) -> None:
    """Given a prepayment and its settlement queued, only the prepayment is due; then the settlement."""
    ingest(ledger, [IngestEntry(shop_row(1), (PlannedRow("prepayment", 1, "P1", receipt=receipt("P1")),
                                              PlannedRow("settlement", 1, "F1", receipt=receipt("F1"))))], cursor=1)
    before = {r.tag: r.updated_at for r in ledger.list_receipts()}
    assert due_tags(ledger) == ["P1"]
    assert {r.tag: r.updated_at for r in ledger.list_receipts()} == before     # asking wrote nothing
    finish(ledger, "P1", 1)
    assert due_tags(ledger) == ["F1"]


def test_refund_waits_for_every_receipt_of_its_sale(ledger: Ledger) -> None:
    """A refund is due once the sale's receipts are all done, not before."""
    refund = IngestEntry(dataclasses.replace(shop_row(2), kind="refund", refund_of=1),
                         (PlannedRow("refund", 1, "R2", receipt=dataclasses.replace(
                             receipt("R2"), operation=Operation.SALE_REFUND)),))
    ingest(ledger, [entry(1), refund], cursor=2)
    assert due_tags(ledger) == ["S1"]
    finish(ledger, "S1", 1)
    assert due_tags(ledger) == ["R2"]


def test_refund_of_a_prepayment_waits_only_for_the_prepayment(ledger: Ledger) -> None:
    """A refund mirroring a prepayment (1214 = 1) goes once the prepayment is done, even with the settlement queued."""
    sale = IngestEntry(shop_row(1), (PlannedRow("prepayment", 1, "P1", receipt=receipt("P1")),
                                     PlannedRow("settlement", 1, "F1", receipt=receipt("F1"))))
    body = receipt("R2")
    prepaid = dataclasses.replace(body, operation=Operation.SALE_REFUND, items=tuple(
        dataclasses.replace(it, payment_method=PaymentMethod.FULL_PREPAYMENT) for it in body.items))
    refund = IngestEntry(dataclasses.replace(shop_row(2), kind="refund", refund_of=1),
                         (PlannedRow("refund", 1, "R2", receipt=prepaid),))
    ingest(ledger, [sale, refund], cursor=2)
    assert due_tags(ledger) == ["P1"]
    finish(ledger, "P1", 1)
    assert sorted(due_tags(ledger)) == ["F1", "R2"]


def test_refund_of_a_sale_not_in_the_ledger_is_not_due(ledger: Ledger) -> None:
    """A refund whose sale has no receipt at all waits (it is never sent before its sale)."""
    refund = IngestEntry(dataclasses.replace(shop_row(2), kind="refund", refund_of=99),
                         (PlannedRow("refund", 1, "R2", receipt=dataclasses.replace(
                             receipt("R2"), operation=Operation.SALE_REFUND)),))
    ingest(ledger, [refund], cursor=2)
    assert due_tags(ledger) == []


def test_second_correction_waits_for_the_first(ledger: Ledger) -> None:
    """Part 2 of a correction pair is due only after part 1 is done; part 1 waits for nothing."""
    ingest(ledger, [entry(1)], cursor=1)
    finish(ledger, "S1", 1)
    ledger.add_planned(1, [PlannedRow("correction", 1, "C1", receipt=receipt("C1")),
                           PlannedRow("correction", 2, "C1.2", receipt=receipt("C1.2"))])
    assert due_tags(ledger) == ["C1"]
    finish(ledger, "C1", 2)
    assert due_tags(ledger) == ["C1.2"]


def test_orphan_refunds_are_found_by_what_they_wait_for_not_by_message(ledger: Ledger) -> None:
    """A refund rejected before its sale arrived is found by its waits_for_source, whatever its message says."""
    orphan = IngestEntry(dataclasses.replace(shop_row(5), kind="refund", refund_of=4),
                         (PlannedRow("refund", 1, "R5", error="refunded sale unknown (any wording)"),))
    ingest(ledger, [orphan], cursor=5)
    assert ledger.orphan_refunds([4]) == [5]
    assert ledger.orphan_refunds([3]) == []


def test_replan_supersedes_a_dropped_part_and_keeps_every_attempt(ledger: Ledger) -> None:
    """A failed two-part payment rebuilt as one part: part 1 is requeued, part 2 superseded; no row and no
    attempt is deleted."""
    two = IngestEntry(shop_row(1), (PlannedRow("sale", 1, "S1", receipt=receipt("S1")),
                                    PlannedRow("sale", 2, "S1.2", receipt=receipt("S1.2"))))
    ingest(ledger, [two], cursor=1)
    for rec in ledger.list_receipts():
        a = ledger.record_intent(rec.id, register="kkt1", fn_serial="FN1", fd_before=0)
        ledger.record_retry(rec.id, attempt_id=a, new=State.FAILED, attempts=1, next_attempt_at=utcnow(),
                            error="link down", error_class="transient")
    ids = {r.tag: r.id for r in ledger.list_receipts()}
    assert ledger.replan(1, shop_row(1), [PlannedRow("sale", 1, "S1", receipt=receipt("S1"))]) == 1
    states = {r.tag: r.state for r in ledger.list_receipts()}
    assert states == {"S1": State.QUEUED, "S1.2": State.SUPERSEDED}
    assert all(len(ledger.attempts_of(i)) == 1 for i in ids.values())
    assert "S1.2" not in due_tags(ledger)
    # the accountant's "money without a receipt" lists the payment once, not the dropped part too
    from worker.reports.totals import summarize
    assert [u.tag for u in summarize(ledger.list_receipts()).unreceipted] == ["S1"]


def test_replan_of_a_failed_receipt_that_still_cannot_be_built_is_rejected(ledger: Ledger) -> None:
    """failed → rejected is an explicit transition: the rebuilt row is rejected with the new reason."""
    ingest(ledger, [entry(1)], cursor=1)
    rec = ledger.list_receipts()[0]
    a = ledger.record_intent(rec.id, register="kkt1", fn_serial="FN1", fd_before=0)
    ledger.record_retry(rec.id, attempt_id=a, new=State.FAILED, attempts=1, next_attempt_at=utcnow(),
                        error="link down", error_class="transient")
    assert ledger.replan(1, shop_row(1), [PlannedRow("sale", 1, "S1", error="items[0].vat: bad")]) == 0
    after = ledger.get(rec.id)
    assert after.state is State.REJECTED and after.last_error == "items[0].vat: bad"
    assert len(ledger.attempts_of(rec.id)) == 1
    # and rebuilt again, still rejected, with the newest reason (rejected → rejected)
    ledger.replan(1, shop_row(1), [PlannedRow("sale", 1, "S1", error="items[0].price: bad")])
    assert ledger.get(rec.id).last_error == "items[0].price: bad"


