"""ATOL Online API v5 (FFD 1.2): pure mapping between our receipt model and the service's JSON.

Nothing here touches the network; the driver (:mod:`.driver`) and the emulator (:mod:`.server`)
both use it, and unit tests check it on plain dicts and bytes.

Sources (described, not copied): the request/answer shapes follow the public v5 SDK
sushi-market/atol-online-sdk (``src/V5/DTO/**``, ``Enums/**``, document version 3.12), the error
codes follow mygento/kkm ``Model/Source/Atol/ErrorCode.php``, idempotency by ``external_id``
(error 33 carrying the first uuid) the v4.6 protocol as quoted in 0x6368656174/atol-online#6 and
the sample answer in ssitdikov/ATOL#9. Places where those sources are silent are marked GUESS.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kkt_drivers.errors import (
    DeviceStateError, DriverConfigError, KktError, OutcomeUnknownError, RejectedError, TransientError,
)
from kkt_drivers.receipt import (
    DocumentKind, FiscalDocument, Operation, PaymentMethod, PaymentType, Receipt, TaxSystem, money,
)

#: ``external_id`` is unique per group code, at most 128 characters (protocol v4.6 / v5)
EXTERNAL_ID_MAX_LEN = 128
#: the service's date-time format in ``timestamp``, ``receipt_datetime`` and correction dates
DATETIME_FORMAT = "%d.%m.%Y %H:%M:%S"
DATE_FORMAT = "%d.%m.%Y"

#: report statuses
STATUS_WAIT = "wait"
STATUS_DONE = "done"
STATUS_FAIL = "fail"

#: system error codes the driver reacts to by name
ERR_TOKEN_UNKNOWN = 10
ERR_TOKEN_EXPIRED = 11
ERR_BAD_CREDENTIALS = 12
ERR_DUPLICATE = 33
ERR_REPORT_NOT_FOUND = 34

TAX_SYSTEMS = {
    TaxSystem.OSN: "osn", TaxSystem.USN_INCOME: "usn_income",
    TaxSystem.USN_INCOME_OUTCOME: "usn_income_outcome", TaxSystem.ESHN: "esn", TaxSystem.PATENT: "patent",
}
PAYMENT_METHODS = {
    PaymentMethod.FULL_PREPAYMENT: "full_prepayment", PaymentMethod.PARTIAL_PREPAYMENT: "prepayment",
    PaymentMethod.ADVANCE: "advance", PaymentMethod.FULL_PAYMENT: "full_payment",
    PaymentMethod.PARTIAL_PAYMENT_AND_CREDIT: "partial_payment", PaymentMethod.CREDIT: "credit",
    PaymentMethod.CREDIT_PAYMENT: "credit_payment",
}
#: payments[].type: 0 cash, 1 cashless, 2 prepayment offset, 3 credit, 4 other (5–9 = extended kinds)
PAYMENT_TYPES = {
    PaymentType.CASH: 0, PaymentType.ELECTRONIC: 1, PaymentType.PREPAID: 2, PaymentType.CREDIT: 3,
    PaymentType.OTHER: 4,
}


def operation_name(receipt: Receipt) -> str:
    """The URL operation: ``sell`` / ``sell_refund`` / ``sell_correction`` / ``sell_refund_correction``."""
    base = {Operation.SALE: "sell", Operation.SALE_REFUND: "sell_refund",
            Operation.EXPENSE: "buy", Operation.EXPENSE_REFUND: "buy_refund"}[receipt.operation]
    return f"{base}_correction" if receipt.correction is not None else base


def external_id(receipt: Receipt, generation: int = 0, prefix: str = "") -> str:
    """Our idempotency key: the receipt's tag and operation (plus a generation after a failure).

    The same receipt always maps to the same key, so a repeat after a lost answer returns the first
    registration's uuid. Generation N > 0 is only used once generation N-1 ended ``fail`` in a way the
    service documents as "not registered" (a failed external_id cannot be reused: it answers 33).
    """
    key = f"{prefix}{receipt.tag}.{operation_name(receipt)}"
    if generation:
        key += f".{generation + 1}"
    if len(key) > EXTERNAL_ID_MAX_LEN:
        raise RejectedError(f"external_id longer than {EXTERNAL_ID_MAX_LEN} characters", field="tag")
    return key


@dataclass(frozen=True)
class Company:
    """The shop as the service's register group knows it (``receipt.company``)."""

    inn: str
    payment_address: str
    email: str | None = None


def _contact(value: str) -> dict[str, str]:
    return {"email": value} if "@" in value else {"phone": value}


def receipt_body(receipt: Receipt, company: Company, ext_id: str, *, now: dt.datetime,
                 callback_url: str | None = None) -> dict[str, Any]:
    """The JSON body (with Decimal amounts) of ``POST {group}/{operation}`` for *receipt*."""
    email = company.email or receipt.company_email
    if not email:
        # v5 CompanyDTO: email is mandatory (requisite 1117)
        raise DriverConfigError("ATOL Online needs the shop's e-mail (URL option 'email' or receipts.company_email)")
    doc: dict[str, Any] = {
        "company": {"email": email, "sno": TAX_SYSTEMS[receipt.tax_system], "inn": company.inn,
                    # the group's registers are registered with this address (agent error 2 otherwise), so
                    # the register's own setting wins over the receipt's settlement place
                    "payment_address": company.payment_address},
        "items": [{
            "name": it.name, "price": it.price, "quantity": it.quantity, "measure": int(it.measure_unit),
            "sum": it.amount, "payment_method": PAYMENT_METHODS[it.payment_method],
            # v5 takes the 1212 code as a number (v4 used strings)
            "payment_object": int(it.payment_subject),
            "vat": {"type": it.vat.value, "sum": it.vat.vat_amount(it.amount)},
        } for it in receipt.items],
        "payments": [{"type": PAYMENT_TYPES[p.type], "sum": p.amount} for p in receipt.payments],
        "total": receipt.total,
        # requisite 1192: our tag rides in the document itself, as on a local register
        "additional_check_props": receipt.tag,
    }
    if receipt.customer_contact:
        doc["client"] = _contact(receipt.customer_contact)
    elif receipt.correction is None:
        doc["client"] = {}
    if receipt.internet:
        doc["internet"] = True
    if receipt.cashier:
        doc["cashier"] = receipt.cashier  # UNVERIFIED: v5 field name for 1021 (v4 had "cashier")
    if receipt.cashier_inn:
        doc["cashier_inn"] = receipt.cashier_inn
    body: dict[str, Any] = {"external_id": ext_id, "timestamp": now.strftime(DATETIME_FORMAT)}
    if receipt.correction is not None:
        c = receipt.correction
        info: dict[str, Any] = {"type": "self" if c.self_made else "instruction",
                                "base_date": c.corrected_date.strftime(DATE_FORMAT)}  # GUESS: v4's date format
        if c.order_number:
            info["base_number"] = c.order_number
        doc["correction_info"] = info
        body["correction"] = doc
    else:
        body["receipt"] = doc
    if callback_url:
        body["service"] = {"callback_url": callback_url}
    return body


def dumps(obj: Any) -> bytes:
    """UTF-8 JSON where every Decimal is written as a number with its own digits (never via float)."""
    return _encode(obj).encode("utf-8")


def _encode(obj: Any) -> str:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_encode(v)}"
                              for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in obj) + "]"
    if isinstance(obj, float):
        raise TypeError("float in a money JSON body")
    return json.dumps(obj, ensure_ascii=False)


def loads(data: bytes | str) -> Any:
    """Parse JSON with every non-integer number as Decimal."""
    return json.loads(data, parse_float=Decimal)


@dataclass(frozen=True)
class ServiceError:
    """The ``error`` object of an answer: ``{code, text, type, error_id}``."""

    code: int
    text: str
    type: str

    @classmethod
    def from_json(cls, obj: Any) -> "ServiceError | None":
        if not isinstance(obj, dict):
            return None
        return cls(code=int(obj.get("code", 0)), text=str(obj.get("text", "")), type=str(obj.get("type", "unknown")))

    @property
    def vendor_code(self) -> str:
        return f"{self.type}:{self.code}"


# driver errors (type "driver") by how the worker reacts
_DRIVER_DATA_ERRORS = frozenset({
    -6, -3803, -3804, -3805, -3809, -3810, -3813, -3816, -3817, -3819, -3835, -3863, -3895, -3896, -3897,
    -3905, -3906, -3932, -3969, -3970, -4021, -4022, -4025,
})
_DRIVER_FN_ERRORS = frozenset({
    -3910, -3911, -3912, -3913, -3914, -3915, -3916, -3917, -3919, -3922, -3934, -3935, -3936, -3975,
    -3976, -3978, -3979, -3980,
})
_DRIVER_DEVICE_ERRORS = frozenset({-3822, -3924, -3929, -3933})
# GUESS: a "fail" whose cause is the service losing its own register mid-document (no link, no
# answer, broken connection, unknown) is not documented as "nothing registered"; we do not assume it
_DRIVER_UNCERTAIN = frozenset({-1, -15, -20, -21, -199})


def failure_error(err: ServiceError | None) -> KktError:
    """The worker's error for a report in status ``fail`` (or a refused request) with *err*.

    Every class but OutcomeUnknownError means "nothing was registered under this external_id".
    """
    if err is None:
        return OutcomeUnknownError("ATOL Online: status fail without an error object")
    msg = f"ATOL Online {err.type} error {err.code}: {err.text}"
    code, kind = err.code, err.type
    if kind == "timeout":
        # «Превышено время ожидания чека в очереди»: the receipt never reached a register
        return TransientError(msg, vendor_code=err.vendor_code)
    if kind == "agent":
        if code == 2:      # the group's register has another INN or payment address: our settings
            return DriverConfigError(msg, vendor_code=err.vendor_code)
        if code == 3:      # the register's clock is wrong
            return DeviceStateError(msg, vendor_code=err.vendor_code)
        return RejectedError(msg, vendor_code=err.vendor_code)
    if kind == "driver":
        if code in _DRIVER_DATA_ERRORS:
            return RejectedError(msg, vendor_code=err.vendor_code)
        if code in _DRIVER_FN_ERRORS:
            return DeviceStateError(msg, condition=DeviceStateError.COND_FN_ERROR, vendor_code=err.vendor_code)
        if code in _DRIVER_DEVICE_ERRORS:
            return DeviceStateError(msg, vendor_code=err.vendor_code)
        return OutcomeUnknownError(msg, vendor_code=err.vendor_code)
    if kind == "system":
        if code in (ERR_TOKEN_UNKNOWN, ERR_TOKEN_EXPIRED):   # refused for the token: nothing accepted
            return TransientError(msg, vendor_code=err.vendor_code)
        if code in (ERR_BAD_CREDENTIALS, 20, 21):
            return DriverConfigError(msg, vendor_code=err.vendor_code)
        if code in (1, 13, 31, 32, 40, 41):
            return RejectedError(msg, vendor_code=err.vendor_code)
        # 50 «Ошибка сервера» and anything unknown: the service does not say what it kept
    return OutcomeUnknownError(msg, vendor_code=err.vendor_code)


def registered_nothing(err: ServiceError | None) -> bool:
    """True when a ``fail`` with *err* certainly left no document (so a new generation may be sent)."""
    return not isinstance(failure_error(err), OutcomeUnknownError)


@dataclass(frozen=True)
class Report:
    """An answer of ``GET {group}/report/{uuid}`` (or of a registration)."""

    uuid: str
    status: str
    error: ServiceError | None
    payload: dict[str, Any] | None
    external_id: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> "Report":
        if not isinstance(obj, dict):
            raise ValueError("answer is not a JSON object")
        payload = obj.get("payload")
        return cls(uuid=str(obj.get("uuid") or ""), status=str(obj.get("status") or ""),
                   error=ServiceError.from_json(obj.get("error")),
                   payload=payload if isinstance(payload, dict) else None, external_id=obj.get("external_id"))


def fiscal_document(report: Report, receipt: Receipt) -> FiscalDocument:
    """The :class:`FiscalDocument` of a ``done`` report for *receipt*; ValueError if it is malformed."""
    p = report.payload
    if report.status != STATUS_DONE or p is None:
        raise ValueError(f"report {report.uuid} is not done")
    try:
        total = money(Decimal(str(p["total"])))
        return FiscalDocument(
            fd_number=int(p["fiscal_document_number"]), fiscal_sign=int(p["fiscal_document_attribute"]),
            fn_serial=str(p["fn_number"]),
            kind=DocumentKind.CORRECTION if receipt.correction is not None else DocumentKind.RECEIPT,
            issued_at=dt.datetime.strptime(str(p["receipt_datetime"]), DATETIME_FORMAT),
            shift_number=int(p["shift_number"]),
            receipt_number=int(p["fiscal_receipt_number"]) if p.get("fiscal_receipt_number") is not None else None,
            operation=receipt.operation, total=total,
            # the payload does not echo 1192; the service matched our external_id, which encodes the tag
            tag=receipt.tag,
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"malformed payload in report {report.uuid}: {exc}") from exc
