"""The prepayment flow (``cfg.flow = "prepayment"``, fz54-receipts.md §4.5 B): a sale is paid as a
prepayment (1214 = 1 at the calculated rate, 22 % → 22/122); its delivery gives the settlement
(«зачёт предоплаты»: 1214 = 4 at the ordinary rate on the delivery date, paid by the offset 1215).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kkt_drivers.receipt import Item, Operation, PaymentMethod, PaymentType
from worker.receipts.assemble import late_day, plan_receipts
from worker.receipts.config import PlannedReceipt, ReceiptConfig
from worker.receipts.discounts import reprice
from worker.receipts.issued import IssuedLine, IssuedSale, by_line, refunded_before, whole_line
from worker.receipts.plan import Stage
from worker.receipts.rules import InvalidPayment, calculated_rate, ordinary_rate, parse_paid_at, rate_on, short_repr
from worker.receipts.sale import ValidSale, validate_sale
from worker.shop.rows import KIND_SALE, ShopPayment


def as_prepayment(item: Item) -> Item:
    """A goods line as prepaid in full: 1214 = 1 at the calculated rate (§3.2)."""
    return dataclasses.replace(item, payment_method=PaymentMethod.FULL_PREPAYMENT, vat=calculated_rate(item.vat))


def as_settlement(item: Item, on: dt.date) -> Item:
    """A goods line handed over: 1214 = 4 at the ordinary rate in force on *on* (§3.3)."""
    return dataclasses.replace(
        item, payment_method=PaymentMethod.FULL_PAYMENT, vat=rate_on(ordinary_rate(item.vat), on)
    )


def check_full_payment_lines(sale: ValidSale, prefix: str = "") -> None:
    """The prepayment flow sets 1214 itself; a line asking for another method is a mapping mistake."""
    for n, ln in enumerate(sale.lines):
        if ln.item.payment_method is not PaymentMethod.FULL_PAYMENT:
            raise InvalidPayment(
                f"{prefix}payment_items[{n}].payment_method",
                f"is {ln.item.payment_method.name.lower()}; with receipts.flow = prepayment the lines "
                "describe the goods (full_payment or empty) and the worker sets 1214 per stage",
            )


def build_settlement(
    sale_row: ShopPayment,
    cfg: ReceiptConfig,
    *,
    delivered_at: Any,
    already_refunded: Mapping[int, Any] | None = None,
    issued: IssuedSale | None = None,
    today: dt.date | None = None,
) -> list[PlannedReceipt]:
    """The settlement receipts («зачёт предоплаты», §4.5 B) of a prepaid sale delivered at *delivered_at*.

    The prepayment's lines as issued (*issued*, from the ledger; rebuilt from *sale_row* without it)
    minus what was refunded before the delivery, 1214 = 4, the ordinary rate on the delivery date,
    paid by the prepayment offset (1215 = total). A partly refunded line offsets exactly what is left
    of its prepaid amount (never more: 5.00 left of 10.01 after a 5.01 refund). Tags use the sale's id.
    """
    if sale_row.kind != KIND_SALE:
        raise InvalidPayment(
            "deliveries.payment_id", f"payment {short_repr(sale_row.id)} is not a sale ({short_repr(sale_row.kind)})",
            "nothing: fix deliveries.payment_id in the shop if the delivery names the wrong payment",
        )
    if issued is None:
        sale = validate_sale(sale_row, cfg, prefix="original.")
        check_full_payment_lines(sale, "original.")
        issued = IssuedSale(tuple(dataclasses.replace(ln, item=as_prepayment(ln.item)) for ln in sale.lines),
                            sale.contact, sale.day)
    sale_day = issued.day if issued.day is not None else parse_paid_at(sale_row.paid_at, "payments.paid_at", cfg.zone)
    day = parse_paid_at(delivered_at, "deliveries.delivered_at", cfg.zone)
    if day < sale_day:
        raise InvalidPayment("deliveries.delivered_at", f"delivery dated {day} is before the payment ({sale_day})")
    already = already_refunded or {}
    lines: list[IssuedLine] = []
    for line_no, group in by_line(issued.lines).items():
        whole = whole_line(group)
        done = refunded_before(already, line_no, whole)
        left_qty, left_amount = whole.quantity - done.quantity, whole.amount - done.amount
        if left_qty <= 0:
            continue
        if any(ln.item.marking_code is not None for ln in group):
            # marked units: the first ones of the line are those refunded before the delivery
            lines.extend(IssuedLine(line_no, as_settlement(ln.item, day)) for ln in group[int(done.quantity):])
            continue
        for it in reprice(whole, left_qty, max(left_amount, Decimal(0))):
            lines.append(IssuedLine(line_no, as_settlement(it, day)))
    if not any(ln.item.amount > 0 for ln in lines):
        raise InvalidPayment(
            "deliveries.payment_id",
            f"payment {sale_row.id} was refunded in full before the delivery; nothing to settle",
            "nothing",
        )
    return plan_receipts(Stage.SETTLEMENT, sale_row.id, Operation.SALE, lines, issued.contact, cfg,
                         PaymentType.PREPAID, late_day=late_day(day, today, cfg), tax_system=issued.tax_system)

