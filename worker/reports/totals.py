"""Totals an accountant signs: what was fiscalized, and what money has no receipt (pure functions).

Signs follow the money: a sale (1054 = 1) and a refund of an expense (4) count plus, a refund of a
sale (2) and an expense (3) minus. Corrections are kept apart (they fix earlier days) and enter
the net. Money that has no receipt — rejected, failed, needing review, still queued or in flight —
is listed by state with each payment's reason, never silently left out.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

from kkt_drivers.receipt import Operation, Receipt
from worker.ledger.records import ReceiptRecord
from worker.ledger.states import State

ZERO = Decimal("0.00")

#: +1 money in, -1 money out, by requisite 1054
SIGN = {Operation.SALE: 1, Operation.SALE_REFUND: -1, Operation.EXPENSE: -1, Operation.EXPENSE_REFUND: 1}


@dataclass(frozen=True)
class Unreceipted:
    """A receipt the ledger has not (yet) got from a register, with why."""

    source_id: int
    tag: str
    state: str
    amount: Decimal | None
    reason: str | None


@dataclass
class ShiftTotals:
    """Fiscalized money of one register's shift, by operation."""

    register: str
    shift: int | None
    count: int = 0
    by_operation: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))


@dataclass
class Totals:
    """Everything :func:`summarize` computes."""

    sales: Decimal = ZERO
    refunds: Decimal = ZERO
    corrections: Decimal = ZERO
    count_done: int = 0
    by_state: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    by_vat: dict[str, Decimal] = field(default_factory=dict)
    by_payment_type: dict[str, Decimal] = field(default_factory=dict)
    by_shift: dict[tuple[str, int | None], ShiftTotals] = field(default_factory=dict)
    unreceipted: list[Unreceipted] = field(default_factory=list)

    @property
    def net(self) -> Decimal:
        """Sales minus refunds plus corrections (signed): the fiscalized revenue of the period."""
        return self.sales - self.refunds + self.corrections

    @property
    def unreceipted_amount(self) -> Decimal:
        return sum((u.amount or ZERO for u in self.unreceipted), ZERO)


def _receipt(rec: ReceiptRecord) -> Receipt | None:
    try:
        return rec.receipt() if rec.body else None
    except Exception:  # a body that cannot be read is reported by its total alone
        return None


def summarize(records: Iterable[ReceiptRecord]) -> Totals:
    """Totals of *records* (any selection: a day, a shift, a range)."""
    t = Totals()
    by_state: dict[str, list] = defaultdict(lambda: [0, ZERO])
    by_vat: dict[str, Decimal] = defaultdict(lambda: ZERO)
    by_pay: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for rec in records:
        amount = rec.total
        by_state[rec.state.value][0] += 1
        by_state[rec.state.value][1] += amount or ZERO
        if rec.state is State.SUPERSEDED:
            continue  # a part a replan dropped: the payment's money is in the receipts of its new plan
        if rec.state is not State.DONE:
            t.unreceipted.append(Unreceipted(rec.source_id, rec.tag, rec.state.value, amount, rec.last_error))
            continue
        receipt = _receipt(rec)
        if receipt is None or amount is None:
            continue
        sign = SIGN[receipt.operation]
        t.count_done += 1
        if receipt.correction is not None:
            t.corrections += sign * amount
        elif sign > 0:
            t.sales += amount
        else:
            t.refunds += amount
        for item in receipt.items:
            by_vat[item.vat.value] += sign * item.amount
        for pay in receipt.payments:
            by_pay[pay.type.value] += sign * pay.amount
        key = (rec.register or "?", rec.shift_number)
        shift = t.by_shift.setdefault(key, ShiftTotals(*key))
        shift.count += 1
        shift.by_operation[receipt.operation.name.lower()] += amount
    t.by_state = {s: (n, a) for s, (n, a) in sorted(by_state.items())}
    t.by_vat = dict(sorted(by_vat.items()))
    t.by_payment_type = dict(sorted(by_pay.items()))
    t.unreceipted.sort(key=lambda u: (u.state, u.source_id, u.tag))
    return t
