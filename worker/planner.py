"""Turn a shop row into the receipts the ledger will track — or one rejected row naming the field."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from worker.ledger import Ledger, PlannedRow
from worker.receipts import InvalidPayment, ReceiptConfig, build_receipts, make_tag
from worker.shop_rows import KIND_REFUND, ShopPayment

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Rows planned earlier in the same poll, not yet in the ledger."""

    payments: dict[int, ShopPayment] = field(default_factory=dict)
    refunded: dict[int, dict[Any, Decimal]] = field(default_factory=dict)


class Planner:
    """Builds receipts with :func:`worker.receipts.build_receipts`, looking up refunded originals."""

    def __init__(self, ledger: Ledger, config: ReceiptConfig) -> None:
        self.ledger = ledger
        self.config = config

    @staticmethod
    def new_batch() -> Batch:
        """State shared by the rows of one poll."""
        return Batch()

    def plan(self, payment: ShopPayment, batch: Batch | None = None) -> tuple[PlannedRow, ...]:
        """The receipts for *payment*; a row that cannot become a correct receipt is one rejected row."""
        batch = batch if batch is not None else Batch()
        stage = "refund" if payment.kind == KIND_REFUND else "sale"
        try:
            original, already = None, None
            if payment.kind == KIND_REFUND and isinstance(payment.refund_of, int):
                original = batch.payments.get(payment.refund_of) or self.ledger.payment_snapshot(payment.refund_of)
                already = self.ledger.refunded_quantities(payment.refund_of, excluding=payment.id)
                for line, qty in batch.refunded.get(payment.refund_of, {}).items():
                    already[line] = already.get(line, Decimal(0)) + qty
            planned = build_receipts(payment, self.config, original=original, already_refunded=already)
        except InvalidPayment as exc:
            log.warning("payment rejected: %s", exc, extra={"source_id": payment.id})
            return (PlannedRow(stage, 1, make_tag(payment.id, stage, 1), error=str(exc)),)
        except Exception as exc:  # a bug in the builder must not stop ingest; the row waits for a fix
            log.exception("could not build receipts (bug)", extra={"source_id": payment.id})
            return (PlannedRow(stage, 1, make_tag(payment.id, stage, 1),
                               error=f"internal error while building the receipt: {type(exc).__name__}: {exc}"),)
        batch.payments[payment.id] = payment
        if payment.kind == KIND_REFUND and isinstance(payment.refund_of, int):
            per_line = batch.refunded.setdefault(payment.refund_of, {})
            for item in payment.items:
                per_line[item.line_no] = per_line.get(item.line_no, Decimal(0)) + Decimal(item.quantity)
        return tuple(PlannedRow(p.stage, p.part, p.receipt.tag, receipt=p.receipt) for p in planned)
