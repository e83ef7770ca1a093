"""Correction receipts (54-FZ art. 4.3, fz54-receipts.md §5.2): the rules, as pure functions.

Correction receipts are queued like any other receipt (stage "correction"); the lanes issue them
(intent → fiscalize → outcome, reconciled by tag after a crash). Nobody talks to a register here.

* **missed** — the payment never got its receipt (rejected for bad data, or failed for days): a
  self-made correction (1173 = 0) with 1178 = the payment's date, built from the (fixed) shop row.
  Refused while any receipt of the payment is issued (done, queued or in flight).
* **reverse** — a receipt was issued with wrong data: a reverse correction (opposite 1054, repeating
  the wrong receipt exactly) then a correct correction built from the fixed shop row. The second
  waits for the first (:mod:`worker.receipts.plan`).

In the reverse pair, 1192 carries the wrong receipt's fiscal sign (ФПД), as the tax office expects,
on both documents; the ledger keeps its own unique tags (``C<id>``, ``C<id>.2``) and links both rows
to the wrong receipt (``corrects_tag``, ``corrects_fiscal_sign``). Recovery still finds each document
unambiguously: it matches the document's 1192 *and* its operation (the reverse has the opposite
1054), and the second is issued only after the first is done, so the two never share a
reconciliation window. A ``missed`` correction carries our own tag in 1192.

The caller (the CLI) reads the ledger and the shop, calls these, and stores the rows they return;
a refusal is :class:`CorrectionRefused` with the message for the admin.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Protocol, Sequence

from kkt_drivers.receipt import Correction, Operation, Receipt
from worker.errors import WorkerError
from worker.receipts.config import ReceiptConfig, make_tag
from worker.receipts.plan import PlannedRow, Stage, rows_of
from worker.receipts.prepayment import build_settlement
from worker.receipts.rules import InvalidPayment, parse_paid_at
from worker.shop.rows import ShopPayment


def correction_of(receipt: Receipt, *, tag: str, corrected_on: dt.date) -> Receipt:
    """*receipt* as a self-made correction receipt (1173 = 0, 1178 = *corrected_on*) with our *tag* in 1192."""
    return dataclasses.replace(receipt, tag=tag, correction=Correction(self_made=True, corrected_date=corrected_on))


_REVERSED = {
    Operation.SALE: Operation.SALE_REFUND,
    Operation.SALE_REFUND: Operation.SALE,
    Operation.EXPENSE: Operation.EXPENSE_REFUND,
    Operation.EXPENSE_REFUND: Operation.EXPENSE,
}


def reverse_correction_of(wrong: Receipt, *, tag: str, corrected_on: dt.date) -> Receipt:
    """The reverse correction of a wrong receipt: the opposite 1054 repeating the wrong data (§5.2)."""
    return dataclasses.replace(
        correction_of(wrong, tag=tag, corrected_on=corrected_on), operation=_REVERSED[wrong.operation]
    )


class CorrectionRefused(WorkerError):
    """A correction that must not be queued; the message tells the admin why and what to do."""


class ExistingReceipt(Protocol):
    """What the rules read of a payment's receipts already in the ledger (a ledger ReceiptRecord)."""

    tag: str
    stage: str
    part: int
    fd_number: int | None
    fiscal_sign: int | None
    fiscal_at: dt.datetime | None

    @property
    def state(self) -> Any: ...
    @property
    def issued(self) -> bool: ...
    @property
    def done(self) -> bool: ...
    @property
    def rejected(self) -> bool: ...
    def receipt(self) -> Receipt: ...


def next_part(existing: Sequence[ExistingReceipt]) -> int:
    """The part number of the payment's next correction."""
    return max((r.part for r in existing if r.stage == Stage.CORRECTION), default=0) + 1


def payment_day(payment: ShopPayment) -> dt.date:
    """The payment's date (1178 of a correction), or CorrectionRefused naming the bad field."""
    try:
        return parse_paid_at(payment.paid_at, "payments.paid_at")
    except InvalidPayment as exc:
        raise CorrectionRefused(f"payment {payment.id}: {exc}") from None


def plan_missed(source_id: int, existing: Sequence[ExistingReceipt], payment: ShopPayment | None,
                planned: Callable[[ShopPayment], Sequence[PlannedRow]]) -> tuple[list[PlannedRow], dt.date]:
    """Self-made corrections for a payment that has no receipt; (rows, 1178 date).

    *planned* plans the payment's ordinary receipts (the ingest planner); each becomes a correction.
    """
    issued = [r for r in existing if r.issued]
    if issued:
        r = issued[0]
        raise CorrectionRefused(f"payment {source_id} already has receipt {r.tag} ({r.state.value}); "
                                "for a wrong receipt use `correction reverse`")
    if payment is None:
        raise CorrectionRefused(f"payment {source_id} is neither in the shop nor in the ledger")
    rows = list(planned(payment))
    bad = [p.error for p in rows if p.receipt is None]
    if bad:
        raise CorrectionRefused(f"payment {source_id} still cannot become a receipt: {bad[0]}")
    day = payment_day(payment)
    part = next_part(existing)
    out = []
    for n, p in enumerate(rows):
        assert p.receipt is not None
        tag = make_tag(source_id, Stage.CORRECTION, part + n)
        out.append(PlannedRow(Stage.CORRECTION.value, part + n, tag,
                              receipt=correction_of(p.receipt, tag=tag, corrected_on=day),
                              corrects_tag=p.tag if any(r.tag == p.tag for r in existing) else None))
    return out, day


def wrong_receipt(source_id: int, existing: Sequence[ExistingReceipt], wrong_tag: str | None,
                  corrected_tag: Callable[[ExistingReceipt], str | None]) -> ExistingReceipt:
    """The issued receipt to reverse: the one tagged *wrong_tag*, or the payment's only done non-correction.

    *corrected_tag* gives, for a correction receipt, the tag of the receipt it corrects.
    """
    candidates = [r for r in existing if (r.tag == wrong_tag if wrong_tag else
                                          r.done and r.stage != Stage.CORRECTION)]
    if len(candidates) != 1:
        tags = ", ".join(f"{r.tag} ({r.state.value})" for r in existing) or "none"
        raise CorrectionRefused(f"payment {source_id}: name the wrong receipt with --tag (its receipts: {tags})")
    wrong = candidates[0]
    if not wrong.done or wrong.fiscal_sign is None:
        raise CorrectionRefused(f"receipt {wrong.tag} is {wrong.state.value}, not issued: nothing to reverse")
    for r in existing:
        if r.stage == Stage.CORRECTION and not r.rejected and corrected_tag(r) == wrong.tag:
            raise CorrectionRefused(f"receipt {wrong.tag} is already being corrected by {r.tag}")
    return wrong


@dataclass(frozen=True)
class ReversePair:
    """The reverse correction and the correct one that follows it."""

    rows: tuple[PlannedRow, PlannedRow]
    day: dt.date
    wrong_total: Decimal
    right_total: Decimal


def plan_reverse(source_id: int, existing: Sequence[ExistingReceipt], wrong: ExistingReceipt,
                 payment: ShopPayment | None, cfg: ReceiptConfig, *,
                 planned: Callable[[ShopPayment], Sequence[PlannedRow]],
                 already_refunded: Callable[[], dict[Any, Decimal]]) -> ReversePair:
    """A reverse correction of *wrong* and a correct one built from the fixed *payment*.

    A settlement is rebuilt as of the day the wrong one was issued (its date is the delivery's);
    any other receipt from the payment's ordinary plan (*planned*).
    """
    if payment is None:
        raise CorrectionRefused(f"payment {source_id} is neither in the shop nor in the ledger")
    try:
        if wrong.stage == Stage.SETTLEMENT:
            day = (wrong.fiscal_at or dt.datetime.now()).date()
            fixed = list(rows_of(build_settlement(payment, cfg, delivered_at=wrong.fiscal_at,
                                                  already_refunded=already_refunded())))
        else:
            day = payment_day(payment)
            fixed = list(planned(payment))
    except InvalidPayment as exc:
        raise CorrectionRefused(f"payment {source_id} still cannot become a receipt: {exc}") from None
    right = next((p for p in fixed if (p.stage, p.part) == (wrong.stage, wrong.part)), None)
    if right is None or right.receipt is None:
        reason = right.error if right else f"the fixed row has no {wrong.stage} part {wrong.part}"
        raise CorrectionRefused(f"payment {source_id} still cannot become a receipt: {reason}")
    old = wrong.receipt()
    if (right.receipt.items, right.receipt.payments, right.receipt.operation) == (old.items, old.payments,
                                                                                 old.operation):
        raise CorrectionRefused(f"the shop row of payment {source_id} still gives the same receipt as "
                                f"{wrong.tag}; fix the row first")
    part = next_part(existing)
    rev_tag = make_tag(source_id, Stage.CORRECTION, part)
    fix_tag = make_tag(source_id, Stage.CORRECTION, part + 1)
    link = {"corrects_tag": wrong.tag, "corrects_fiscal_sign": wrong.fiscal_sign}
    fp_tag = str(wrong.fiscal_sign)  # 1192 of both documents: the ФПД of the receipt being corrected
    rows = (
        PlannedRow(Stage.CORRECTION.value, part, rev_tag,
                   receipt=reverse_correction_of(old, tag=fp_tag, corrected_on=day), **link),
        PlannedRow(Stage.CORRECTION.value, part + 1, fix_tag,
                   receipt=correction_of(right.receipt, tag=fp_tag, corrected_on=day), **link),
    )
    return ReversePair(rows, day, old.total, right.receipt.total)
