"""Exact JSON round trip for :class:`~kkt_drivers.receipt.Receipt` (amounts as strings, never float)."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from kkt_drivers.receipt import (
    Correction, Item, MeasureUnit, Operation, Payment, PaymentMethod, PaymentSubject, PaymentType,
    Receipt, TaxSystem, Vat,
)


def receipt_to_dict(r: Receipt) -> dict[str, Any]:
    """A JSON-safe dict of *r*."""
    return {
        "operation": int(r.operation), "tax_system": int(r.tax_system), "tag": r.tag,
        "items": [{
            "name": i.name, "price": str(i.price), "quantity": str(i.quantity), "amount": str(i.amount),
            "vat": i.vat.value, "payment_method": int(i.payment_method),
            "payment_subject": int(i.payment_subject), "measure_unit": int(i.measure_unit),
        } for i in r.items],
        "payments": [{"type": p.type.value, "amount": str(p.amount)} for p in r.payments],
        "customer_contact": r.customer_contact, "settlement_place": r.settlement_place,
        "internet": r.internet, "company_email": r.company_email, "cashier": r.cashier,
        "cashier_inn": r.cashier_inn,
        "correction": None if r.correction is None else {
            "self_made": r.correction.self_made, "corrected_date": r.correction.corrected_date.isoformat(),
            "order_number": r.correction.order_number},
    }


def receipt_from_dict(d: dict[str, Any]) -> Receipt:
    """Inverse of :func:`receipt_to_dict`."""
    c = d.get("correction")
    return Receipt(
        operation=Operation(d["operation"]), tax_system=TaxSystem(d["tax_system"]), tag=d["tag"],
        items=tuple(Item(
            name=i["name"], price=Decimal(i["price"]), quantity=Decimal(i["quantity"]),
            amount=Decimal(i["amount"]), vat=Vat(i["vat"]), payment_method=PaymentMethod(i["payment_method"]),
            payment_subject=PaymentSubject(i["payment_subject"]), measure_unit=MeasureUnit(i["measure_unit"]),
        ) for i in d["items"]),
        payments=tuple(Payment(PaymentType(p["type"]), Decimal(p["amount"])) for p in d["payments"]),
        customer_contact=d.get("customer_contact"), settlement_place=d.get("settlement_place"),
        internet=d.get("internet", True), company_email=d.get("company_email"), cashier=d.get("cashier"),
        cashier_inn=d.get("cashier_inn"),
        correction=None if not c else Correction(c["self_made"], dt.date.fromisoformat(c["corrected_date"]),
                                                 c.get("order_number", "")),
    )


def dumps(r: Receipt) -> str:
    """Serialize *r* to a JSON string."""
    return json.dumps(receipt_to_dict(r), ensure_ascii=False, sort_keys=True)


def loads(s: str) -> Receipt:
    """Parse a receipt serialized by :func:`dumps` (Decimals parsed exactly)."""
    return receipt_from_dict(json.loads(s, parse_float=Decimal))
