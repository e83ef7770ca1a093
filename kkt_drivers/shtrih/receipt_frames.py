"""A receipt as the data of the Shtrih-M frames that carry it, all built before anything is sent: FF46
lines (with their FF4D 2108 TLV), the FF0C requisites (1192 tag, 1008 contact, …), the FF45 close, and
1173/1174 of a correction. A field that cannot be encoded is a RejectedError naming it, so a bad receipt
never leaves a half-built receipt open on the register.
"""
from __future__ import annotations

import datetime as dt

from kkt_drivers.errors import RejectedError
from kkt_drivers.receipt import Receipt, kopecks
from kkt_drivers.shtrih import codes, messages as m, protocol as p
from kkt_drivers.shtrih.text import fit

#: the longest TLV block one FF0C frame carries
FF0C_MAX = 250


def correction_tlv(receipt: Receipt) -> bytes:
    """1173 (0 self-made, 1 by order) and 1174 {1178 date of the corrected settlement, 1179 order}."""
    c = receipt.correction
    assert c is not None
    day = dt.datetime.combine(c.corrected_date, dt.time(), dt.timezone.utc)
    basis = p.tlv_uint(1178, int(day.timestamp()), 4) + p.tlv_str(
        1179, fit(c.order_number, p.TLV_ENCODING, "correction.order_number"))
    return p.tlv_uint(1173, 0 if c.self_made else 1, 1) + p.tlv(1174, basis)


def encode_receipt(receipt: Receipt, *,
                    nano: bool = False) -> tuple[list[tuple[bytes, bytes]], list[bytes], bytes]:
    """Every frame's data for *receipt*, before anything is sent; RejectedError names the field.

    Items are ``(FF4D TLV, FF46 data)`` pairs. Text is fitted to the code pages (see :mod:`.text`).
    """
    problems = receipt.problems()
    if problems:
        raise RejectedError(problems[0], field=problems[0].split(":", 1)[0])
    items = []
    for n, it in enumerate(receipt.items):
        name = fit(it.name, p.TEXT_ENCODING, f"items[{n}].name")
        line = m.encode_operation_v2(m.OperationV2(
            operation=int(receipt.operation), quantity=it.quantity, price=it.price, amount=it.amount,
            tax=codes.tax_byte(it.vat, nano=nano), department=1, payment_method=int(it.payment_method),
            payment_subject=int(it.payment_subject), name=name))
        items.append((p.tlv_uint(2108, int(it.measure_unit), 1), line))
    tlvs = [p.tlv_str(1192, fit(receipt.tag, p.TLV_ENCODING, "tag"))]
    if receipt.customer_contact:
        tlvs.append(p.tlv_str(1008, fit(receipt.customer_contact, p.TLV_ENCODING, "customer_contact")))
    if receipt.internet:
        tlvs.append(p.tlv_uint(1125, 1, 1))
    for tag, value, field in ((1187, receipt.settlement_place, "settlement_place"),
                              (1117, receipt.company_email, "company_email"),
                              (1021, receipt.cashier, "cashier"), (1203, receipt.cashier_inn, "cashier_inn")):
        if value:
            tlvs.append(p.tlv_str(tag, fit(value, p.TLV_ENCODING, field)))
    for block in tlvs:
        if len(block) > FF0C_MAX:
            raise RejectedError(f"requisite {p.read_uint(block, 0, 2)} is too long for FF0C",
                                field="requisites")
    slots = [0] * p.PAYMENT_SLOT_COUNT
    for pay in receipt.payments:
        slots[p.PAYMENT_SLOTS[pay.type.value]] += kopecks(pay.amount)
    close = m.encode_close_receipt(m.CloseReceipt(payments=tuple(slots), tax_system=int(receipt.tax_system)))
    return items, tlvs, close
