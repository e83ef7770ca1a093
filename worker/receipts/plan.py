"""What a payment's receipts are planned as: their stages, what each waits for, the planned rows.

A payment becomes receipts in stages (fz54-receipts.md §4.5): one full payment (``sale``), or a
``prepayment`` at payment and a ``settlement`` at delivery; a ``refund`` row mirrors what it refunds;
an admin adds ``correction`` receipts. Some receipts may only be issued after others:

| receipt                         | waits until every receipt … is done               |
|---------------------------------|---------------------------------------------------|
| refund of a sale                | of the sale (the refunded shop row)               |
| refund mirroring a prepayment   | of stage prepayment of the refunded row           |
| settlement                      | of stage prepayment of its own row                |
| correction part n               | of stage correction of its own row, parts below n |

The rule is stored with the receipt when it is planned (:class:`Prerequisite`, columns
``waits_for_source`` / ``waits_for_stage``), so the ledger's ``due`` query returns only receipts
that can go now. :class:`PlannedRow` is a planned receipt as the ledger stores it (built, or
rejected with the reason). Pure data: no database, no I/O.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Sequence

from kkt_drivers.receipt import PaymentMethod, Receipt


class Stage(str, enum.Enum):
    """The stage of a receipt within its payment (the ledger's ``receipts.stage``)."""

    SALE = "sale"                # one receipt for a full payment (the single flow)
    PREPAYMENT = "prepayment"    # 1214 = 1 at payment (the prepayment flow)
    SETTLEMENT = "settlement"    # 1214 = 4 at delivery, offsetting the prepayment
    REFUND = "refund"            # a refund row of the shop
    CORRECTION = "correction"    # an admin's correction receipt (missed or reverse pair)
    EXTERNAL = "external"        # a sale before go-live, issued by another system: recorded done, never sent

    def __str__(self) -> str:
        return self.value


#: 1214 values of an advance (full or partial prepayment, advance): a refund of these mirrors a prepayment
PREPAID_METHODS = frozenset({PaymentMethod.FULL_PREPAYMENT, PaymentMethod.PARTIAL_PREPAYMENT, PaymentMethod.ADVANCE})


@dataclass(frozen=True)
class Prerequisite:
    """The receipts that must all be done first: those of shop row ``source_id`` (only of ``stage`` if set).

    A receipt never waits for itself or for the parts after it of its own row and stage; with no
    receipt of the prerequisite in the ledger at all, it waits (its sale has not arrived yet).
    """

    source_id: int
    stage: Stage | None = None


def prerequisite(stage: str, part: int, source_id: int, *, refund_of: int | None = None,
                 receipt: Receipt | None = None) -> Prerequisite | None:
    """What receipt *part* of *stage* for shop row *source_id* waits for (the table in the module header)."""
    stage = Stage(stage)
    if stage is Stage.REFUND:
        if not isinstance(refund_of, int) or isinstance(refund_of, bool):
            return None
        prepaid = receipt is not None and any(it.payment_method in PREPAID_METHODS for it in receipt.items)
        return Prerequisite(refund_of, Stage.PREPAYMENT if prepaid else None)
    if stage is Stage.SETTLEMENT:
        return Prerequisite(source_id, Stage.PREPAYMENT)
    if stage is Stage.CORRECTION and part > 1:
        return Prerequisite(source_id, Stage.CORRECTION)
    return None


@dataclass(frozen=True)
class PlannedRow:
    """A receipt to create for a payment: built (``receipt``) or rejected (``error``)."""

    stage: str
    part: int
    tag: str
    receipt: Receipt | None = None
    error: str | None = None
    #: for a correction: the tag and fiscal sign of the receipt it reverses or replaces
    corrects_tag: str | None = None
    corrects_fiscal_sign: int | None = None
    #: the shop's line_no of each receipt line (refunds of this receipt find their lines by it)
    lines: tuple[int, ...] | None = None
    #: the receipt was issued by another system (a sale before go-live): recorded done, never sent
    issued_elsewhere: bool = False
    #: the register group that may print it (routing; see docs/pool.md)
    group: str = "default"


class _Built:  # the shape of worker.receipts.config.PlannedReceipt, without importing the builders
    stage: str
    part: int
    receipt: Receipt
    lines: tuple[int, ...]
    warnings: tuple[str, ...]


def rows_of(planned: Sequence[_Built]) -> tuple[PlannedRow, ...]:
    """Built receipts (:class:`~worker.receipts.config.PlannedReceipt`) as the rows the ledger stores;
    warnings are kept in the row's last_error."""
    return tuple(PlannedRow(p.stage, p.part, p.receipt.tag, receipt=p.receipt, lines=p.lines,
                            error=("warning: " + " | ".join(p.warnings)) if p.warnings else None)
                 for p in planned)
