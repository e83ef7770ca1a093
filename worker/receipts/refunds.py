"""A refund row → its receipts (1054 = 2), mirroring the refunded sale's lines as issued (fz54-receipts.md §5.1).

Name, price, VAT *as issued*, 1214, 1212 and 2108 come from the sale's receipt; the refund row only
says which lines (``line_no``) and how much. In the prepayment flow a refund mirrors the stage it
refunds: the prepayment while the goods are not delivered, the settlement after. Partial refunds of
a line are rounded cumulatively (:func:`worker.receipts.issued.portion_amount`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kkt_drivers.receipt import KOPECK, Operation, PaymentMethod
from worker.receipts import marking as mk
from worker.receipts.assemble import late_day, plan_receipts
from worker.receipts.config import PlannedReceipt, ReceiptConfig
from worker.receipts.contact import blank, contact_of
from worker.receipts.discounts import reprice
from worker.receipts.issued import IssuedLine, IssuedSale, by_line, portion_amount, refunded_before, whole_line
from worker.receipts.plan import Stage
from worker.receipts.prepayment import as_prepayment, as_settlement
from worker.receipts.rules import InvalidPayment, parse_line_no, parse_money, parse_paid_at, parse_quantity, short_repr
from worker.receipts.sale import validate_sale
from worker.shop.rows import KIND_SALE, ShopItem, ShopPayment


def build_refund(
    p: ShopPayment,
    cfg: ReceiptConfig,
    original: ShopPayment | None,
    already: Mapping[int, Any],
    refund_stage: str | None = None,
    settled_on: dt.date | None = None,
    issued: IssuedSale | None = None,
    today: dt.date | None = None,
) -> list[PlannedReceipt]:
    """The refund receipts of refund row *p* (see :func:`worker.receipts.build.build_receipts`)."""
    if p.refund_of is None or isinstance(p.refund_of, bool) or not isinstance(p.refund_of, int):
        raise InvalidPayment(
            "payments.refund_of", f"a refund must name the refunded sale's id, got {short_repr(p.refund_of)}"
        )
    if issued is None:
        issued = issued_from_row(p, cfg, original, refund_stage, settled_on)
    sale_lines = by_line(issued.lines)

    day = parse_paid_at(p.paid_at, "payments.paid_at", cfg.zone)
    if issued.day is not None and day < issued.day:
        raise InvalidPayment(
            "payments.paid_at", f"refund dated {day} is before the sale it refunds ({issued.day}); "
                                f"dates are local to {cfg.timezone}, shop times read in source.timezone"
        )
    amount = parse_money(p.amount, "payments.amount", positive=True, max_value=None)
    # 1008: the refund's own contact, else the one the sale receipt went to (§5.1 keeps 1008)
    warnings: tuple[str, ...] = ()
    if blank(p.customer_email) and blank(p.customer_phone):
        contact = issued.contact
    else:
        contact, warnings = contact_of(p, "")
    if not isinstance(p.items, (tuple, list)) or not p.items:
        raise InvalidPayment("payment_items", "a refund needs at least one item")

    lines: list[IssuedLine] = []
    seen: set[int] = set()
    for n, raw in enumerate(p.items):
        f = f"payment_items[{n}]"
        if not isinstance(raw, ShopItem):
            raise InvalidPayment(f, "is not an item row")
        line_no = parse_line_no(raw.line_no, f"{f}.line_no")
        if line_no not in sale_lines:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} is not in the refunded sale {p.refund_of} "
                                                 f"(its lines: {', '.join(map(str, sorted(sale_lines)))})")
        if line_no in seen:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} appears twice in the refund")
        seen.add(line_no)
        whole = whole_line(sale_lines[line_no])
        qty = parse_quantity(raw.quantity, f"{f}.quantity")
        if raw.price is not None and len(sale_lines[line_no]) == 1 \
                and parse_money(raw.price, f"{f}.price") != whole.price:
            raise InvalidPayment(f"{f}.price", f"{raw.price} must equal the refunded line's price as issued "
                                               f"{whole.price} (or be empty)")
        line_amount = parse_money(raw.amount, f"{f}.amount")
        done = refunded_before(already, line_no, whole)
        if qty + done.quantity > whole.quantity:
            raise InvalidPayment(
                f"{f}.quantity",
                f"refunding {qty} of line {line_no} exceeds what is left: "
                f"sold {whole.quantity}, refunded {done.quantity}",
            )
        expected = portion_amount(whole.quantity, whole.amount, done, qty)
        left = whole.amount - done.amount
        last = qty + done.quantity == whole.quantity
        # the shop may round each part on its own (±1 kopeck); the cumulative amount never may pass the line
        if (last and line_amount != left) or (not last and (abs(line_amount - expected) > KOPECK
                                                            or line_amount > left)):
            rule = ("the last part of a line is what is left of it" if last else
                    "refunds of a line are rounded cumulatively and never exceed it")
            raise InvalidPayment(
                f"{f}.amount",
                f"{line_amount} for {qty} of line {line_no} should be {expected}: {rule} "
                f"(line {whole.amount} for {whole.quantity}, refunded before {done.amount} for {done.quantity})",
            )
        # name, VAT as issued (20 % stays 20 % in 2026), 1214, 1212, 2108 all mirror the sale's receipt;
        # the price is the issued one unless the exact amount needs another kopeck price
        # a line handed over on credit (1214 = 6) was not paid: its refund cancels credit (1216), no money
        # goes back. GUESS: a 1214 = 5 line is refunded as money (1081); the shop's refund row says so.
        on_credit = whole.payment_method is PaymentMethod.CREDIT
        if any(ln.item.marking_code is not None for ln in sale_lines[line_no]):
            # marked goods go back unit by unit with the codes they were sold with (2003 = 3)
            units = mk.refund_units([ln.item for ln in sale_lines[line_no]], qty, done.quantity,
                                    mk.codes_of(raw, f), f, line_amount)
            lines.extend(IssuedLine(line_no, it, it.amount if on_credit else Decimal(0)) for it in units)
            continue
        lines.extend(IssuedLine(line_no, it, it.amount if on_credit else Decimal(0))
                     for it in reprice(whole, qty, line_amount))

    total = sum((ln.item.amount for ln in lines), Decimal(0))
    if total != amount:
        raise InvalidPayment("payments.amount", f"{amount} != sum of the items' amounts {total}")
    return plan_receipts(Stage.REFUND, p.id, Operation.SALE_REFUND, lines, contact, cfg, warnings=warnings,
                         late_day=late_day(day, today, cfg), tax_system=issued.tax_system)


def issued_from_row(p: ShopPayment, cfg: ReceiptConfig, original: ShopPayment | None, refund_stage: str | None,
                     settled_on: dt.date | None) -> IssuedSale:
    """The refunded sale's lines rebuilt from its shop row (no stored receipt: another system issued it)."""
    if original is None:
        # the wording is matched by Ledger.orphan_refunds: such a refund is rebuilt when its sale arrives
        raise InvalidPayment("payments.refund_of", f"the refunded sale {p.refund_of} is not in the ledger yet",
                             "nothing: the refund is built again automatically when the sale arrives; if the sale "
                             "never comes, check payments.refund_of in the shop")
    if original.id != p.refund_of:
        raise InvalidPayment(
            "payments.refund_of",
            f"is {short_repr(p.refund_of)}, but the sale given is {short_repr(original.id)}",
        )
    if original.kind != KIND_SALE:
        raise InvalidPayment(
            "payments.refund_of",
            f"payment {short_repr(p.refund_of)} is not a sale ({short_repr(original.kind)})",
        )
    sale = validate_sale(original, cfg, prefix="original.")
    lines = list(sale.lines)
    if refund_stage == Stage.PREPAYMENT:
        lines = [dataclasses.replace(ln, item=as_prepayment(ln.item)) for ln in lines]
    elif refund_stage == Stage.SETTLEMENT:
        lines = [dataclasses.replace(ln, item=as_settlement(ln.item, settled_on or sale.day)) for ln in lines]
    elif refund_stage is not None:
        raise ValueError(f"refund_stage must be prepayment, settlement or None, got {refund_stage!r}")
    return IssuedSale(tuple(lines), sale.contact, sale.day)
