"""Correction rules (worker.receipts.corrections) as pure functions: no CLI, no ledger, no register."""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from kkt_drivers.receipt import Operation
from tests.ledger.test_ledger import receipt, shop_row
from worker.ledger.records import ReceiptRecord
from worker.ledger.states import State
from worker.receipts.corrections import CorrectionRefused, plan_missed, plan_reverse, wrong_receipt
from worker.receipts.plan import PlannedRow


def record(tag: str, state: State, *, stage: str = "sale", part: int = 1, amount: str = "150.50") -> ReceiptRecord:
    from kkt_drivers import receipt_json
    now = dt.datetime(2026, 11, 21, 10)
    done = state is State.DONE
    return ReceiptRecord(
        id=1, source_id=1, payment_id=1, stage=stage, part=part, tag=tag, state=state, register=None, attempts=0,
        next_attempt_at=now, total=Decimal(amount), body=receipt_json.dumps(receipt(tag, amount)), fn_serial=None,
        fd_before=None, fd_number=7 if done else None, fiscal_sign=123456789 if done else None, shift_number=None,
        receipt_number=None, fiscal_at=now if done else None, qr=None, error_class=None, last_error=None,
        kind="sale", refund_of=None, created_at=now, updated_at=now)


CFG = None   # only a settlement is rebuilt from the config; these reverse sales, planned by *planned*


def plan(amount: str = "150.50"):
    return lambda payment: (PlannedRow("sale", 1, "S1", receipt=receipt("S1", amount)),)


def test_missed_is_refused_while_a_receipt_is_issued() -> None:
    """A payment whose receipt is queued, sending or done gets no 'missed' correction."""
    with pytest.raises(CorrectionRefused, match="already has receipt S1 \\(queued\\)"):
        plan_missed(1, [record("S1", State.QUEUED)], shop_row(1), plan())


def test_missed_replaces_a_rejected_receipt_with_a_self_made_correction() -> None:
    """A rejected sale: one correction C1, 1178 = the payment's day, linked to the rejected tag."""
    rows, day = plan_missed(1, [record("S1", State.REJECTED)], shop_row(1), plan())
    assert day == dt.date(2026, 11, 20)
    assert [(r.stage, r.part, r.tag, r.corrects_tag) for r in rows] == [("correction", 1, "C1", "S1")]
    assert rows[0].receipt.correction is not None and rows[0].receipt.correction.self_made


def test_reverse_needs_a_changed_shop_row() -> None:
    """Reversing a receipt whose fixed row still gives the same receipt is refused."""
    wrong = record("S1", State.DONE)
    with pytest.raises(CorrectionRefused, match="still gives the same receipt"):
        plan_reverse(1, [wrong], wrong, shop_row(1), CFG, planned=plan(), already_refunded=dict)


def test_reverse_pair_carries_the_wrong_receipts_fiscal_sign() -> None:
    """A fixed amount: a reverse correction (opposite operation) then the correct one, both 1192 = ФПД."""
    wrong = record("S1", State.DONE)
    pair = plan_reverse(1, [wrong], wrong, shop_row(1, "120.00"), CFG, planned=plan("120.00"),
                        already_refunded=dict)
    rev, fix = pair.rows
    assert (rev.tag, fix.tag, rev.receipt.tag, fix.receipt.tag) == ("C1", "C1.2", "123456789", "123456789")
    assert rev.receipt.operation is Operation.SALE_REFUND and fix.receipt.operation is Operation.SALE
    assert (pair.wrong_total, pair.right_total) == (Decimal("150.50"), Decimal("120.00"))


def test_a_receipt_already_being_corrected_is_not_reversed_twice() -> None:
    """A non-rejected correction linked to the wrong receipt blocks a second reverse."""
    wrong = record("S1", State.DONE)
    corr = dataclasses.replace(record("C1", State.QUEUED, stage="correction"))
    with pytest.raises(CorrectionRefused, match="already being corrected by C1"):
        wrong_receipt(1, [wrong, corr], "S1", lambda r: "S1" if r.tag == "C1" else None)
