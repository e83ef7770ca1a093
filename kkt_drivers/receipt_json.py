"""Exact JSON round trip for :class:`~kkt_drivers.receipt.Receipt` (amounts as strings, never float)."""
from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

from kkt_drivers import json_text
from kkt_drivers.receipt import (
    Correction, IndustryRequisite, Item, MeasureUnit, Operation, Payment, PaymentMethod, PaymentSubject,
    PaymentType, PlannedStatus, Receipt, TaxSystem, Vat,
)


def _item_to_dict(i: Item) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": i.name, "price": str(i.price), "quantity": str(i.quantity), "amount": str(i.amount),
        "vat": i.vat.value, "payment_method": int(i.payment_method),
        "payment_subject": int(i.payment_subject), "measure_unit": int(i.measure_unit),
    }
    # marking keys only when set, so unmarked receipts keep their JSON byte for byte
    if i.marking_code is not None:
        d["marking_code_b64"] = base64.b64encode(i.marking_code).decode("ascii")
    if i.planned_status is not None:
        d["planned_status"] = int(i.planned_status)
    if i.marking_mode:
        d["marking_mode"] = i.marking_mode
    if i.fraction is not None:
        d["fraction"] = list(i.fraction)
    if i.marking_result is not None:
        d["marking_result"] = i.marking_result
    if i.industry:
        d["industry"] = [[r.foiv, r.doc_date, r.doc_number, r.value] for r in i.industry]
    return d


def _item_from_dict(i: dict[str, Any]) -> Item:
    code = i.get("marking_code_b64")
    return Item(
        name=i["name"], price=Decimal(i["price"]), quantity=Decimal(i["quantity"]),
        amount=Decimal(i["amount"]), vat=Vat(i["vat"]), payment_method=PaymentMethod(i["payment_method"]),
        payment_subject=PaymentSubject(i["payment_subject"]), measure_unit=MeasureUnit(i["measure_unit"]),
        marking_code=base64.b64decode(code) if code is not None else None,
        planned_status=PlannedStatus(i["planned_status"]) if i.get("planned_status") is not None else None,
        marking_mode=i.get("marking_mode", 0),
        fraction=tuple(i["fraction"]) if i.get("fraction") else None,  # type: ignore[arg-type]
        marking_result=i.get("marking_result"),
        industry=tuple(IndustryRequisite(*r) for r in i.get("industry", ())),
    )


def receipt_to_dict(r: Receipt) -> dict[str, Any]:
    """A JSON-safe dict of *r*."""
    return {
        "operation": int(r.operation), "tax_system": int(r.tax_system), "tag": r.tag,
        "items": [_item_to_dict(i) for i in r.items],
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
        items=tuple(_item_from_dict(i) for i in d["items"]),
        payments=tuple(Payment(PaymentType(p["type"]), Decimal(p["amount"])) for p in d["payments"]),
        customer_contact=d.get("customer_contact"), settlement_place=d.get("settlement_place"),
        internet=d.get("internet", True), company_email=d.get("company_email"), cashier=d.get("cashier"),
        cashier_inn=d.get("cashier_inn"),
        correction=None if not c else Correction(c["self_made"], dt.date.fromisoformat(c["corrected_date"]),
                                                 c.get("order_number", "")),
    )


def dumps(r: Receipt) -> str:
    """Serialize *r* to a JSON string (keys sorted; kkt_drivers.json_text: every ingested receipt is written)."""
    return json_text.dumps(receipt_to_dict(r), sort_keys=True)


def loads(s: str) -> Receipt:
    """Parse a receipt serialized by :func:`dumps` (Decimals parsed exactly)."""
    return receipt_from_dict(json.loads(s, parse_float=Decimal))
