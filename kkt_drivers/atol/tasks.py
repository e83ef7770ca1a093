"""Pure mapping between our receipt model and ATOL Driver v10 JSON tasks (no I/O).

* :func:`receipt_task` — a :class:`~kkt_drivers.receipt.Receipt` → the ``sell`` / ``sellReturn`` /
  ``sellCorrection`` … task; :func:`dumps` writes it with every amount as a JSON number with
  exactly two decimals, produced from the Decimal (never via float).
* :func:`loads` parses an answer with Decimal for every non-integer number.
* ``*_from_*`` functions turn task results into our types; a missing or malformed field raises
  :class:`AnswerError` naming the field (the caller decides which error class that is).

Field names: ``register-apis.md`` §1.2 (KKTServiceLib, BED types, WR-agent). Enum spellings that
only one source gives are marked ``# UNVERIFIED:``.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid as uuidlib
from decimal import Decimal
from typing import Any

from kkt_drivers.receipt import (
    KOPECK, QTY_STEP, DeviceStatus, DocumentKind, FiscalDocument, MeasureUnit, Operation, PaymentMethod,
    PaymentSubject, PaymentType, Receipt, TaxSystem, Vat, money,
)

#: fixed namespace of our request uuids (uuid5): the same receipt always maps to the same uuids
KEY_NAMESPACE = uuidlib.UUID("6f1c1a52-5b1e-4e55-9c0e-7a2b0c4d9e11")


class AnswerError(ValueError):
    """A task result lacks a field or has one of the wrong type (names the field)."""


# -- enums ------------------------------------------------------------------------------------
TAXATION_TYPES = {
    TaxSystem.OSN: "osn", TaxSystem.USN_INCOME: "usnIncome", TaxSystem.USN_INCOME_OUTCOME: "usnIncomeOutcome",
    TaxSystem.ESHN: "esn", TaxSystem.PATENT: "patent",
}
#: our Vat values are already ATOL's ``tax.type`` spellings (vat22/vat122: BED types.ts, 2025-12)
TAX_TYPES = {v: v.value for v in Vat}
PAYMENT_METHODS = {
    PaymentMethod.FULL_PREPAYMENT: "fullPrepayment", PaymentMethod.PARTIAL_PREPAYMENT: "prepayment",
    PaymentMethod.ADVANCE: "advance", PaymentMethod.FULL_PAYMENT: "fullPayment",
    PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT: "partialPayment", PaymentMethod.CREDIT: "credit",
    PaymentMethod.CREDIT_PAYMENT: "creditPayment",
}
PAYMENT_OBJECTS = {
    PaymentSubject.COMMODITY: "commodity", PaymentSubject.EXCISE: "excise", PaymentSubject.JOB: "job",
    PaymentSubject.SERVICE: "service", PaymentSubject.PAYMENT: "payment",
    PaymentSubject.AGENT_COMMISSION: "agentCommission",
    PaymentSubject.AWARD: "pay",  # UNVERIFIED: WR-agent's table (12 = "pay", alias "composite")
    PaymentSubject.ANOTHER: "another", PaymentSubject.PROPERTY_RIGHT: "proprietaryLaw",
    PaymentSubject.NON_OPERATING_GAIN: "nonOperatingIncome", PaymentSubject.OTHER_PAYMENT: "otherContributions",
    PaymentSubject.DEPOSIT: "deposit", PaymentSubject.EXPENSE: "consumption",
    PaymentSubject.MARKED_EXCISE_NO_CODE: "exciseWithoutMarking", PaymentSubject.MARKED_EXCISE: "exciseWithMarking",
    PaymentSubject.MARKED_COMMODITY_NO_CODE: "commodityWithoutMarking",
    PaymentSubject.MARKED_COMMODITY: "commodityWithMarking",
}
#: requisite 2108 as ATOL's FFD 1.2 ``measurementUnit`` names. piece/gram/kilogram/ton/meter/
#: squareCentimeter/squareMeter/milliliter/liter are seen in clients; the rest are
# UNVERIFIED: camelCase guesses by ATOL's naming pattern
MEASUREMENT_UNITS = {
    MeasureUnit.PIECE: "piece", MeasureUnit.GRAM: "gram", MeasureUnit.KILOGRAM: "kilogram",
    MeasureUnit.TON: "ton", MeasureUnit.CENTIMETER: "centimeter", MeasureUnit.DECIMETER: "decimeter",
    MeasureUnit.METER: "meter", MeasureUnit.SQ_CENTIMETER: "squareCentimeter",
    MeasureUnit.SQ_DECIMETER: "squareDecimeter", MeasureUnit.SQ_METER: "squareMeter",
    MeasureUnit.MILLILITER: "milliliter", MeasureUnit.LITER: "liter", MeasureUnit.CUBIC_METER: "cubicMeter",
    MeasureUnit.KWH: "kilowattHour", MeasureUnit.GCAL: "gkal", MeasureUnit.DAY: "day", MeasureUnit.HOUR: "hour",
    MeasureUnit.MINUTE: "minute", MeasureUnit.SECOND: "second", MeasureUnit.KILOBYTE: "kilobyte",
    MeasureUnit.MEGABYTE: "megabyte", MeasureUnit.GIGABYTE: "gigabyte", MeasureUnit.TERABYTE: "terabyte",
    MeasureUnit.OTHER: "otherUnits",
}
PAYMENT_TYPES = {
    PaymentType.CASH: "cash", PaymentType.ELECTRONIC: "electronically", PaymentType.PREPAID: "prepaid",
    PaymentType.CREDIT: "credit", PaymentType.OTHER: "other",
}
RECEIPT_TYPES = {
    Operation.SALE: "sell", Operation.SALE_REFUND: "sellReturn", Operation.EXPENSE: "buy",
    Operation.EXPENSE_REFUND: "buyReturn",
}
CORRECTION_TYPES = {
    Operation.SALE: "sellCorrection", Operation.SALE_REFUND: "sellReturnCorrection",
    Operation.EXPENSE: "buyCorrection", Operation.EXPENSE_REFUND: "buyReturnCorrection",
}
FISCAL_TASK_TYPES = frozenset(RECEIPT_TYPES.values()) | frozenset(CORRECTION_TYPES.values())
#: ``getFnDocument`` → ``documentTLV.fiscalDocumentType`` (KKTServiceLib FiscalDocumentType)
DOCUMENT_KINDS = {
    "openShift": DocumentKind.OPEN_SHIFT, "closeShift": DocumentKind.CLOSE_SHIFT,
    "receipt": DocumentKind.RECEIPT, "receiptCorrection": DocumentKind.CORRECTION,
}


# -- JSON with exact money ---------------------------------------------------------------------
class Money(Decimal):
    """A Decimal that :func:`dumps` writes with exactly two decimals."""


class Qty(Decimal):
    """A Decimal quantity that :func:`dumps` writes with three decimals at most."""


def dumps(obj: Any) -> str:
    """JSON text of *obj*; Decimal values become number tokens from their digits (never float)."""
    if isinstance(obj, Money):
        return format(obj.quantize(KOPECK), "f")
    if isinstance(obj, Qty):
        return format(obj.quantize(QTY_STEP), "f")
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, float):
        raise TypeError("float in an ATOL task (amounts must be Decimal)")
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumps(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    """Parse an ATOL answer; non-integer numbers become Decimal. ValueError if not JSON."""
    return json.loads(text, parse_float=Decimal)


# -- requests ----------------------------------------------------------------------------------
def request_uuid(receipt: Receipt, generation: int = 0) -> str:
    """Our Web Requests uuid for *receipt*: uuid5 of (operation, correction?, tag, generation).

    Independent of the attempt: a resend after a crash reuses it, so the service answers 409 and
    we read the first request's result instead of printing twice. *generation* moves on only
    after the service reported the previous uuid's request as certainly failed (status error).
    """
    kind = "c" if receipt.correction else "r"
    return str(uuidlib.uuid5(KEY_NAMESPACE, f"{int(receipt.operation)}/{kind}/{receipt.tag}/{generation}"))


def task_type(receipt: Receipt) -> str:
    """``sell``, ``sellReturn``, ``sellCorrection`` … for *receipt*."""
    table = CORRECTION_TYPES if receipt.correction else RECEIPT_TYPES
    return table[receipt.operation]


def _operator(name: str | None, inn: str | None) -> dict[str, str] | None:
    if not name:
        return None
    op = {"name": name}
    if inn:
        op["vatin"] = inn
    return op


def receipt_task(receipt: Receipt) -> dict[str, Any]:
    """The JSON task fiscalizing *receipt* (requisite 1192 carries our tag)."""
    task: dict[str, Any] = {
        "type": task_type(receipt),
        "taxationType": TAXATION_TYPES[receipt.tax_system],
        # an internet receipt goes to the buyer electronically, not on paper (54-FZ art. 1.2 p. 5)
        "electronically": bool(receipt.internet),
    }
    op = _operator(receipt.cashier, receipt.cashier_inn)
    if op:
        task["operator"] = op
    if receipt.internet:
        task["internet"] = True
    if receipt.settlement_place:
        task["paymentsPlace"] = receipt.settlement_place
    if receipt.customer_contact:
        task["clientInfo"] = {"emailOrPhone": receipt.customer_contact}
    if receipt.company_email:
        task["companyInfo"] = {"email": receipt.company_email}
    if receipt.correction is not None:
        c = receipt.correction
        task["correctionType"] = "self" if c.self_made else "instruction"   # 1173
        task["correctionBaseDate"] = c.corrected_date.isoformat()            # 1178
        task["correctionBaseNumber"] = c.order_number                        # 1179
    # UNVERIFIED: 1192 as an item of type additionalAttribute with "value" (KKTServiceLib lists the
    # item type; the key name is our reading)
    task["items"] = [_position(i) for i in receipt.items] + [
        {"type": "additionalAttribute", "value": receipt.tag},
    ]
    task["payments"] = [{"type": PAYMENT_TYPES[p.type], "sum": Money(p.amount)} for p in receipt.payments]
    task["total"] = Money(receipt.total)
    return task


def _position(item: Any) -> dict[str, Any]:
    return {
        "type": "position", "name": item.name, "price": Money(item.price), "quantity": Qty(item.quantity),
        "amount": Money(item.amount), "tax": {"type": TAX_TYPES[item.vat]},
        "paymentMethod": PAYMENT_METHODS[item.payment_method],
        "paymentObject": PAYMENT_OBJECTS[item.payment_subject],
        "measurementUnit": MEASUREMENT_UNITS[item.measure_unit],
    }


def shift_task(kind: str, cashier: str | None) -> dict[str, Any]:
    """``openShift`` / ``closeShift`` with the operator (1021)."""
    task: dict[str, Any] = {"type": kind}
    op = _operator(cashier, None)
    if op:
        task["operator"] = op
    return task


def fn_document_task(fd_number: int) -> dict[str, Any]:
    """Read document *fd_number* back from the FN, with its TLV."""
    return {"type": "getFnDocument", "fiscalDocumentNumber": int(fd_number), "withRawData": False}


# -- answers -----------------------------------------------------------------------------------
def field(obj: Any, path: str) -> Any:
    """``obj["a"]["b"]`` for ``path="a.b"``; AnswerError naming the path when absent."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur or cur[part] is None:
            raise AnswerError(f"answer has no {path!r}")
        cur = cur[part]
    return cur


def _int(obj: Any, path: str) -> int:
    v = field(obj, path)
    if isinstance(v, bool):
        raise AnswerError(f"{path!r} is not an integer: {v!r}")
    try:
        d = Decimal(str(v))
    except ArithmeticError as exc:
        raise AnswerError(f"{path!r} is not an integer: {v!r}") from exc
    if d != d.to_integral_value():
        raise AnswerError(f"{path!r} is not an integer: {v!r}")
    return int(d)


def _money(obj: Any, path: str) -> Decimal:
    v = field(obj, path)
    if isinstance(v, (bool, float)):
        raise AnswerError(f"{path!r} is not an amount: {v!r}")
    try:
        return money(Decimal(str(v)))
    except (ArithmeticError, ValueError) as exc:
        raise AnswerError(f"{path!r} is not an amount: {v!r}") from exc


def _datetime(obj: Any, path: str) -> dt.datetime:
    v = field(obj, path)
    try:
        # the register's wall clock: an offset, if the answer has one, is dropped
        return dt.datetime.fromisoformat(str(v)).replace(tzinfo=None)
    except ValueError as exc:
        raise AnswerError(f"{path!r} is not a date-time: {v!r}") from exc


def document_from_fiscal_params(result: Any, kind: DocumentKind, *, operation: Operation | None = None,
                                tag: str | None = None) -> FiscalDocument:
    """A :class:`FiscalDocument` from a task result's ``fiscalParams`` (receipt, shift open/close)."""
    fp = field(result, "fiscalParams")
    total = _money(fp, "total") if kind in (DocumentKind.RECEIPT, DocumentKind.CORRECTION) else None
    return FiscalDocument(
        fd_number=_int(fp, "fiscalDocumentNumber"), fiscal_sign=_int(fp, "fiscalDocumentSign"),
        fn_serial=str(field(fp, "fnNumber")), kind=kind, issued_at=_datetime(fp, "fiscalDocumentDateTime"),
        shift_number=_int(fp, "shiftNumber"),
        receipt_number=_int(fp, "fiscalReceiptNumber") if total is not None else None,
        operation=operation, total=total, tag=tag,
    )


def document_from_fn_document(result: Any, fn_serial: str) -> FiscalDocument:
    """A :class:`FiscalDocument` from a ``getFnDocument`` result (tags in ``documentTLV``)."""
    tlv = field(result, "documentTLV")
    kind_name = field(tlv, "fiscalDocumentType")
    if kind_name not in DOCUMENT_KINDS:
        raise AnswerError(f"'documentTLV.fiscalDocumentType' {kind_name!r} is not a document we make")
    kind = DOCUMENT_KINDS[kind_name]
    receipt = kind in (DocumentKind.RECEIPT, DocumentKind.CORRECTION)
    tag = tlv.get("1192")
    return FiscalDocument(
        fd_number=_int(tlv, "1040"), fiscal_sign=_int(tlv, "1077"),
        fn_serial=str(tlv.get("1041") or fn_serial), kind=kind, issued_at=_datetime(tlv, "1012"),
        shift_number=_int(tlv, "1038"),
        receipt_number=_int(tlv, "1042") if receipt else None,
        operation=Operation(_int(tlv, "1054")) if receipt else None,
        total=_money(tlv, "1020") if receipt else None,
        tag=str(tag) if tag is not None else None,
    )


def last_fd_number(fn_status: Any) -> int:
    """The FN's last FD number from a ``getFnStatus`` result."""
    return _int(fn_status, "fnStatus.fiscalDocumentNumber")


def unsent_documents(ofd: Any) -> int:
    """Documents the OFD has not confirmed, from an ``ofdExchangeStatus`` result."""
    return _int(ofd, "status.notSentCount")


def device_status(shift: Any, fn_status: Any, fn_info: Any, device: Any) -> DeviceStatus:
    """Our :class:`DeviceStatus` from getShiftStatus / getFnStatus / getFnInfo / getDeviceStatus."""
    st = field(shift, "shiftStatus")
    state = field(st, "state")
    if state not in ("closed", "opened", "expired"):
        raise AnswerError(f"'shiftStatus.state' {state!r} is unknown")
    dev = field(device, "deviceStatus")
    opened_at = None
    if state != "closed" and st.get("expiredTime"):
        # UNVERIFIED: the shift's opening time is not in the answer; expiredTime − 24 h is
        opened_at = _datetime(st, "expiredTime") - dt.timedelta(hours=24)
    receipt_type = dev.get("receiptType", "closed")
    return DeviceStatus(
        register_serial=str(dev.get("serialNumber") or field(fn_info, "fnInfo.serial")),
        fn_serial=str(field(fn_info, "fnInfo.serial")),
        last_fd_number=_int(fn_status, "fnStatus.fiscalDocumentNumber"),
        shift_open=state != "closed", shift_number=_int(st, "number"), shift_opened_at=opened_at,
        shift_expired=state == "expired", receipt_open=receipt_type not in ("closed", None),
        paper_ok=bool(dev.get("paperPresent", True)), cover_closed=not dev.get("coverOpened", False),
        fn_ok=bool(dev.get("fnPresent", True)), model="atol",
    )
