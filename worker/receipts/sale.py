"""A sale row validated, in the order an admin would fix it: date, amount, contact, lines, discount,
and which part of each line is on credit (1216). Stops at the first problem (:class:`InvalidPayment`).

Field indexes are 0-based positions in ``payment.items``; *prefix* (``original.``) names the fields
of a refunded sale rebuilt from its row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from kkt_drivers.receipt import Item, PaymentMethod
from worker.receipts import marking as mk
from worker.receipts.config import ReceiptConfig
from worker.receipts.contact import contact_of
from worker.receipts.discounts import spread_discount_keyed
from worker.receipts.issued import IssuedLine
from worker.receipts.item import validate_item
from worker.receipts.rules import InvalidPayment, alias_key, parse_line_no, parse_money, parse_paid_at
from worker.shop.rows import ShopItem, ShopPayment


@dataclass(frozen=True)
class ValidSale:
    """A validated sale row: its date, contact, lines, warnings."""

    day: dt.date
    contact: str
    lines: tuple[IssuedLine, ...]
    warnings: tuple[str, ...] = ()


#: 1214 = 5 / 6: lines (partly) handed over on credit (1216)
CREDIT_METHODS = (PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT, PaymentMethod.CREDIT)


def validate_sale(p: ShopPayment, cfg: ReceiptConfig, *, prefix: str) -> ValidSale:
    """Every rule of a sale row, in the order an admin would fix them."""
    day = parse_paid_at(p.paid_at, f"{prefix}payments.paid_at", cfg.zone)
    amount = _paid_now(p, prefix)
    contact, warnings = contact_of(p, prefix)
    if not isinstance(p.items, (tuple, list)) or not p.items:
        raise InvalidPayment(f"{prefix}payment_items", "a payment needs at least one item")
    keyed: list[tuple[int, Item]] = []
    seen: set[int] = set()
    coded: list[tuple[str, list[bytes]]] = []
    for n, raw in enumerate(p.items):
        f = f"{prefix}payment_items[{n}]"
        if not isinstance(raw, ShopItem):
            raise InvalidPayment(f, "is not an item row")
        line_no = parse_line_no(raw.line_no, f"{f}.line_no")
        if line_no in seen:
            raise InvalidPayment(f"{f}.line_no", f"line {line_no} appears twice in the payment")
        seen.add(line_no)
        item = validate_item(raw, cfg, day, f)
        # marked goods: one line per unit, each with its code (worker/receipts/marking.py)
        codes = mk.codes_of(raw, f)
        subject = mk.subject_for(item.payment_subject, raw.payment_subject is not None, codes, f)
        if subject is not item.payment_subject:   # (a copy per line otherwise: half of the Items built)
            item = dataclasses.replace(item, payment_subject=subject)
        coded.append((f, codes))
        keyed.extend((line_no, unit) for unit in mk.units(item, codes, f))
    mk.check_unique(coded)
    items_total = sum((it.amount for _, it in keyed), Decimal(0))
    if p.discount is not None:
        d = parse_money(p.discount, f"{prefix}payments.discount", max_value=None)
        if d > items_total:
            raise InvalidPayment(f"{prefix}payments.discount", f"{d} is larger than the items' total {items_total}")
        # each spread line keeps its shop line number: refunds of discounted orders find their lines
        keyed = spread_discount_keyed(keyed, d)
    goods = sum((it.amount for _, it in keyed), Decimal(0))
    lines = _credit_split(keyed, amount, goods, p, prefix)
    return ValidSale(day, contact, tuple(lines), warnings)


def _paid_now(p: ShopPayment, prefix: str) -> Decimal:
    """``payments.amount``: > 0, except 0 for a row whose every line is handed over on credit (1214 = 6)."""
    try:
        return parse_money(p.amount, f"{prefix}payments.amount", positive=True, max_value=None)
    except InvalidPayment:
        # a malformed row's items may be anything: only a real list of lines can be "all on credit"
        credit_only = isinstance(p.items, (list, tuple)) and bool(p.items) and all(
            isinstance(it, ShopItem) and it.payment_method is not None
            and alias_key(it.payment_method) in ("6", "credit") for it in p.items)
        if credit_only and isinstance(p.amount, (Decimal, int)) and not isinstance(p.amount, bool) and p.amount == 0:
            return Decimal("0.00")
        raise


def _credit_split(keyed: Sequence[tuple[int, Item]], amount: Decimal, goods: Decimal, p: ShopPayment,
                  prefix: str) -> list[IssuedLine]:
    """Which part of each line is on credit (1216), from ``payments.amount`` = the money received now.

    1214 = 6 (передача в кредит): the whole line is credit. 1214 = 5 (частичный расчёт и кредит): the
    lines are paid in part now; what the row did not receive is credit, spread over those lines in
    order. Every other line is paid in full now.
    """
    full = sum((it.amount for _, it in keyed if it.payment_method not in CREDIT_METHODS), Decimal(0))
    partial = sum((it.amount for _, it in keyed if it.payment_method is PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT),
                  Decimal(0))
    discount = "" if p.discount is None else f" after the discount {p.discount}"
    if not partial:
        if amount != full:
            credit = goods - full
            detail = (f"items' total{discount} {goods}" if not credit else
                      f"what is paid now: {full} (items' total{discount} {goods} minus {credit} on credit, 1214 = 6)")
            raise InvalidPayment(f"{prefix}payments.amount", f"{amount} != {detail}")
    elif not full <= amount < full + partial:
        raise InvalidPayment(
            f"{prefix}payments.amount",
            f"{amount} must be the money received now: at least {full} (lines paid in full) and less than "
            f"{full + partial} (lines with 1214 = 5, частичный расчёт и кредит, are not paid in full)")
    unpaid = full + partial - amount
    out: list[IssuedLine] = []
    for line_no, it in keyed:
        if it.payment_method is PaymentMethod.CREDIT:
            out.append(IssuedLine(line_no, it, it.amount))
        elif it.payment_method is PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT:
            c = min(unpaid, it.amount)
            unpaid -= c
            out.append(IssuedLine(line_no, it, c))
        else:
            out.append(IssuedLine(line_no, it))
    if goods <= 0:
        raise InvalidPayment(f"{prefix}payments.amount", f"the receipt total must be greater than 0, got {goods}")
    return out
