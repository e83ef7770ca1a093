"""A shop payment row → the 54-FZ receipts to fiscalize, or :class:`InvalidPayment` naming the field.

Pure functions, no I/O. :func:`build_receipts` validates the raw row (:mod:`worker.shop.rows`)
field by field and stops at the first problem, so the ledger records one precise reason
(``payment_items[3].vat: 'vat18' is not a valid rate for a sale on 2026-11-21``). Field indexes are
0-based positions in ``payment.items``; ``original.`` prefixes fields of the refunded sale.

* sale   → 1054 = 1, 1214 from the line or the config, one electronic payment (1081) = total;
* sale in the prepayment flow (``cfg.flow = "prepayment"``, §4.5 B) → stage "prepayment": 1214 = 1
  at the calculated rate (22 % → 22/122), electronic payment; the delivery later gives stage
  "settlement" (:func:`build_settlement`): 1214 = 4 at the ordinary rate on the delivery date, paid
  by the prepayment offset (1215);
* refund → 1054 = 2 mirroring the refunded sale's lines (name, price, VAT *as issued*, 1214, 1212,
  2108); the refund row only says which lines (``line_no``) and how much;
* refund in the prepayment flow → mirrors the stage it refunds: the prepayment (1214 = 1, calculated
  rate) while the goods are not delivered, the settlement (1214 = 4, ordinary rate) after (§5.1);
* corrections (§5.2) → :func:`worker.receipts.corrections.correction_of` / ``reverse_correction_of``
  copy a built receipt;
* more than ``max_items_per_receipt`` lines → several receipts, each balanced, each with its tag.

This module only dispatches; the work is done by one module per job:

| module        | job                                                                        |
|---------------|----------------------------------------------------------------------------|
| ``sale``      | a sale row validated: date, amount, contact, lines, discount, credit split |
| ``item``      | one item row → one receipt line, field by field                            |
| ``contact``   | 1008: the e-mail, else the phone                                           |
| ``prepayment``| the prepayment flow: prepayment lines, the settlement (:func:`build_settlement`) |
| ``refunds``   | a refund mirroring the sale as issued                                      |
| ``issued``    | what a sale's receipts carried, what refunds took (cumulative rounding)    |
| ``assemble``  | lines → planned receipts: parts, payments, tags, late → correction         |

Rule references (§) are to ``fz54-receipts.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from kkt_drivers.receipt import Operation
from worker.receipts.assemble import late_day, plan_receipts
from worker.receipts.config import FLOW_PREPAYMENT, PlannedReceipt, ReceiptConfig
from worker.receipts.issued import IssuedSale
from worker.receipts.plan import Stage
from worker.receipts.prepayment import as_prepayment, check_full_payment_lines
from worker.receipts.refunds import build_refund
from worker.receipts.rules import InvalidPayment, short_repr
from worker.receipts.sale import validate_sale
from worker.shop.rows import KIND_REFUND, KIND_SALE, ShopPayment

__all__ = ["build_receipts"]


def build_receipts(
    payment: ShopPayment,
    cfg: ReceiptConfig,
    *,
    original: ShopPayment | None = None,
    already_refunded: Mapping[int, Any] | None = None,
    refund_stage: str | None = None,
    settled_on: dt.date | None = None,
    issued: IssuedSale | None = None,
    today: dt.date | None = None,
) -> list[PlannedReceipt]:
    """Turn one shop payment into the receipts to fiscalize, or raise :class:`InvalidPayment`.

    For a refund, *issued* is what the refunded sale's receipts carried (from the ledger); without
    it the lines are rebuilt from *original* (a sale fiscalized by another system before go-live,
    or a unit test). *already_refunded* maps the sale's line numbers to what earlier refunds took
    (:class:`worker.receipts.issued.Refunded`, or a bare quantity). In the prepayment flow
    *refund_stage* says which stage a refund mirrors when the lines are rebuilt from *original*.
    *today* (the local date the receipt is planned on) makes a late payment a correction receipt
    (:func:`worker.receipts.assemble.is_late`).
    """
    kind = payment.kind
    if kind not in (KIND_SALE, KIND_REFUND):
        raise InvalidPayment(
            "payments.kind", f"{short_repr(payment.kind)} is an unknown kind; it must be "
                             f"'{KIND_SALE}' or '{KIND_REFUND}' (case and spaces do not matter)"
        )
    if not isinstance(payment.id, int) or isinstance(payment.id, bool) or payment.id < 0:
        raise InvalidPayment("payments.id", f"must be a non-negative integer, got {short_repr(payment.id)}")
    if kind == KIND_SALE:
        sale = validate_sale(payment, cfg, prefix="")
        late = late_day(sale.day, today, cfg)
        if cfg.flow == FLOW_PREPAYMENT:
            check_full_payment_lines(sale)
            lines = [dataclasses.replace(ln, item=as_prepayment(ln.item)) for ln in sale.lines]
            return plan_receipts(Stage.PREPAYMENT, payment.id, Operation.SALE, lines, sale.contact, cfg,
                                 warnings=sale.warnings, late_day=late)
        return plan_receipts(Stage.SALE, payment.id, Operation.SALE, list(sale.lines), sale.contact, cfg,
                             warnings=sale.warnings, late_day=late)
    return build_refund(payment, cfg, original, already_refunded or {}, refund_stage, settled_on, issued, today)

