"""One shop item row → one receipt line (:class:`Item`), field by field (name, price × quantity,
1214, 1212, 2108, VAT on the payment's date and for the tax system)."""

from __future__ import annotations

import datetime as dt

from kkt_drivers.receipt import Item, MeasureUnit, PaymentMethod, PaymentSubject
from worker.receipts.config import ReceiptConfig
from worker.receipts.rules import (
    InvalidPayment,
    check_vat,
    check_vat_for_tax_system,
    default_vat_for,
    parse_alias,
    parse_money,
    parse_quantity,
    round_kop,
    text,
)
from worker.shop.rows import ShopItem


def validate_item(raw: ShopItem, cfg: ReceiptConfig, day: dt.date, f: str) -> Item:
    """One item row of a sale paid on *day* → its :class:`Item`; *f* names the row (``payment_items[3]``)."""
    name = text(raw.name, f"{f}.name")
    price = parse_money(raw.price, f"{f}.price")
    qty = parse_quantity(raw.quantity, f"{f}.quantity")
    amount = parse_money(raw.amount, f"{f}.amount")
    if round_kop(price * qty) != amount:
        raise InvalidPayment(
            f"{f}.amount",
            f"{amount} != price {price} x quantity {qty} rounded half up ({round_kop(price * qty)})",
        )
    method = (
        cfg.default_payment_method
        if raw.payment_method is None
        else parse_alias(
            raw.payment_method, f"{f}.payment_method", cfg.method_aliases, "payment method (1214)"
        )
    )
    # «оплата кредита» pays a debt: its subject is «платёж» (1212 = 10, §4.5 F) unless the row says otherwise
    default_subject = PaymentSubject.PAYMENT if method is PaymentMethod.CREDIT_PAYMENT else cfg.default_payment_subject
    subject = (
        default_subject
        if raw.payment_subject is None
        else parse_alias(
            raw.payment_subject, f"{f}.payment_subject", cfg.subject_aliases, "payment subject (1212)"
        )
    )
    unit = (
        MeasureUnit.PIECE
        if raw.measure_unit is None
        else parse_alias(raw.measure_unit, f"{f}.measure_unit", cfg.measure_aliases, "measure unit (2108)")
    )
    if raw.vat is None:
        vat = default_vat_for(cfg.default_vat, day, method)
        shown = f"default {vat.value}"
    else:
        vat = parse_alias(raw.vat, f"{f}.vat", cfg.vat_aliases, "VAT rate")
        shown = raw.vat
    check_vat(vat, shown, day, method, f"{f}.vat")
    check_vat_for_tax_system(vat, shown, cfg.tax_system, f"{f}.vat")
    return Item(
        name=name,
        price=price,
        quantity=qty,
        amount=amount,
        vat=vat,
        payment_method=method,
        payment_subject=subject,
        measure_unit=unit,
    )
