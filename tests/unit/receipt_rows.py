"""Row builders shared by the receipt tests: valid sale/refund rows and a rejection helper."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest

from kkt_drivers.receipt import (
    TaxSystem,
    Vat,
)
from worker.receipts.build import build_receipts
from worker.receipts.config import ReceiptConfig
from worker.receipts.rules import InvalidPayment
from worker.shop.rows import ShopItem, ShopPayment

CFG = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://shop.example")
DAY_2026 = dt.datetime(2026, 11, 21, 12, 30)
DAY_2025 = dt.datetime(2025, 12, 31, 23, 59)


def item(line_no=1, name="Чай зелёный", price="100.00", qty="1", amount=None, vat="vat22", **kw) -> ShopItem:
    """A valid item row; amount defaults to price × qty, rounded half up as 54-FZ receipts are."""
    if amount is None:
        amount = (D(price) * D(qty)).quantize(D("0.01"), rounding=ROUND_HALF_UP)
    return ShopItem(
        line_no=line_no,
        name=name,
        price=D(price) if isinstance(price, str) else price,
        quantity=D(qty) if isinstance(qty, str) else qty,
        amount=D(amount) if isinstance(amount, str) else amount,
        vat=vat,
        **kw,
    )


def sale(
    *items: ShopItem, id=1001, amount=None, paid_at=DAY_2026, email="ivan@example.com", phone=None, **kw
) -> ShopPayment:
    """A valid sale row; amount defaults to the items' total."""
    items = items or (item(),)
    if amount is None:
        amount = sum((i.amount for i in items), D(0))
    return ShopPayment(
        id=id,
        kind="sale",
        amount=amount,
        paid_at=paid_at,
        customer_email=email,
        customer_phone=phone,
        items=tuple(items),
        **kw,
    )


def refund(*items: ShopItem, id=2002, refund_of=1001, amount=None, paid_at=DAY_2026, email=None, phone=None):
    """A refund row referencing the sale's lines by line_no."""
    if amount is None:
        amount = sum((i.amount for i in items), D(0))
    return ShopPayment(
        id=id,
        kind="refund",
        amount=amount,
        paid_at=paid_at,
        customer_email=email,
        customer_phone=phone,
        refund_of=refund_of,
        items=tuple(items),
    )


def ref_item(line_no=1, qty="1", amount="100.00", price=None) -> ShopItem:
    return ShopItem(line_no=line_no, name=None, price=price, quantity=D(qty), amount=D(amount))


def rejected(payment: ShopPayment, cfg: ReceiptConfig = CFG, **kw) -> InvalidPayment:
    with pytest.raises(InvalidPayment) as info:
        build_receipts(payment, cfg, **kw)
    return info.value
