"""ATOL JSON task execution on the shared register model (what libfptr10's ``processJson`` does
against a register), used by the Web Requests emulator in :mod:`kkt_drivers.atol.server` and by the
fake libfptr in the tests.

:meth:`AtolEmulation.execute` takes one task dict (parsed with Decimal) and returns its result
dict, or raises :class:`TaskFailed` (an ATOL error code: the task certainly made no document) or
:class:`LinkLost` (the link to the register broke inside a fiscal task: whether the document was
made is only known by re-reading the FD counter — the Web Requests service's ``blocked``).

Link faults (names of :mod:`kkt_drivers.emulator.faults`) are decided here because only here do we
know where inside a receipt we are:

| fault                   | effect                                                                  |
|-------------------------|-------------------------------------------------------------------------|
| fail_before_send        | error 2 (no connection) before the receipt reaches the register         |
| lose_reply_before_close | LinkLost with the receipt still open: nothing fiscalized               |
| lose_reply_after_close  | LinkLost right after the register closed the receipt (document exists) |
| paper_out_mid_receipt   | model fault: error 44 while positions are added                         |
| fn_error                | model fault: error 115 at close, nothing fiscalized                     |
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from kkt_drivers.atol import codes as c
from kkt_drivers.atol import tasks as t
from kkt_drivers.atol.counters import ShiftTotalsTasks
from kkt_drivers.atol.marking_emulation import MarkingFailed, MarkingTasks, error_code, position_marking
from kkt_drivers.emulator.faults import Faults
from kkt_drivers.emulator.model import SHIFT_MAX_AGE, RegisterModel
from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.receipt import Item, Payment, money

_DESCRIPTIONS = {
    c.NO_CONNECTION: "Нет связи", c.NO_PAPER: "Нет бумаги", c.COVER_OPENED: "Открыта крышка",
    c.SHIFT_EXPIRED: "Смена превысила 24 часа", c.DENIED_IN_CLOSED_SHIFT: "Смена закрыта - операция невозможна",
    c.DENIED_IN_OPENED_RECEIPT: "Чек открыт – операция невозможна",
    c.DENIED_IN_OPENED_SHIFT: "Смена открыта, операция невозможна",
    115: "Ошибка обмена с ФН на уровне интерфейса I2C", c.FN_NO_MORE_DATA: "В ФН нет запрошенных данных",
    13: "Нeкорректное значение параметра", 161: "Не указаны обязательные реквизиты",
    c.INVALID_RECEIPT_TOTAL: "Неверная сумма чека", 11: "Не поддерживается в данной версии",
}
_CONDITION_CODES = {
    DeviceStateError.COND_PAPER_OUT: c.NO_PAPER, DeviceStateError.COND_COVER_OPEN: c.COVER_OPENED,
    DeviceStateError.COND_SHIFT_EXPIRED: c.SHIFT_EXPIRED, DeviceStateError.COND_SHIFT_CLOSED: c.DENIED_IN_CLOSED_SHIFT,
    DeviceStateError.COND_SHIFT_OPEN: c.DENIED_IN_OPENED_SHIFT,
    DeviceStateError.COND_RECEIPT_OPEN: c.DENIED_IN_OPENED_RECEIPT, DeviceStateError.COND_FN_ERROR: 115,
}
_FN_DOCUMENT_TYPES = {"open_shift": "openShift", "close_shift": "closeShift", "receipt": "receipt",
                      "correction": "receiptCorrection"}


def _inverse(table: dict[Any, str]) -> dict[str, Any]:
    return {v: k for k, v in table.items()}


_TAXATION = _inverse(t.TAXATION_TYPES)
_TAX = _inverse(t.TAX_TYPES)
_METHOD = _inverse(t.PAYMENT_METHODS)
_OBJECT = _inverse(t.PAYMENT_OBJECTS)
_UNIT = _inverse(t.MEASUREMENT_UNITS)
_PAYMENT = _inverse(t.PAYMENT_TYPES)
_RECEIPT = _inverse(t.RECEIPT_TYPES)
_CORRECTION = _inverse(t.CORRECTION_TYPES)


class TaskFailed(Exception):
    """The task ended with an ATOL error code; nothing fiscal happened."""

    def __init__(self, code: int, description: str | None = None) -> None:
        super().__init__(f"{code} {description or _DESCRIPTIONS.get(code, '')}")
        self.code = code
        self.description = description or _DESCRIPTIONS.get(code, "Ошибка")


class LinkLost(Exception):
    """The link to the register broke inside a fiscal task; the FD counter decides the outcome."""

    def __init__(self, task_type: str, fd_before: int) -> None:
        super().__init__(f"link to the register lost during {task_type}")
        self.task_type = task_type
        self.fd_before = fd_before


def _bad(what: str) -> TaskFailed:
    return TaskFailed(13, f"Нeкорректное значение параметра: {what}")


class AtolEmulation(ShiftTotalsTasks, MarkingTasks):
    """Executes ATOL JSON tasks on *model*; link faults from *faults* (see the module header)."""

    def __init__(self, model: RegisterModel, faults: Faults | None = None) -> None:
        self.model = model
        self.faults = faults or model.faults

    # -- entry -----------------------------------------------------------------------------
    def execute(self, task: Any) -> dict[str, Any]:
        """Run one task; its result dict, TaskFailed or LinkLost."""
        if not isinstance(task, dict) or not isinstance(task.get("type"), str):
            raise TaskFailed(13, "Нeкорректное значение параметра: type")
        kind = task["type"]
        try:
            if kind in t.FISCAL_TASK_TYPES:
                return self._receipt(task)
            handler = getattr(self, "_t_" + kind, None)
            if handler is None:
                raise TaskFailed(11, f"Не поддерживается: {kind}")
            return handler(task)
        except MarkingFailed as exc:
            raise TaskFailed(exc.code, exc.description) from exc
        except DeviceStateError as exc:
            raise TaskFailed(error_code(exc) or _CONDITION_CODES.get(exc.condition, 15), str(exc)) from exc
        except RejectedError as exc:
            code = c.INVALID_RECEIPT_TOTAL if exc.field == "payments" else (error_code(exc) or 13)
            raise TaskFailed(code, str(exc)) from exc

    # -- fiscal documents --------------------------------------------------------------------
    def _receipt(self, task: dict[str, Any]) -> dict[str, Any]:
        kind = task["type"]
        parsed = self._parse_receipt(task)
        if self.faults.fire("fail_before_send"):
            raise TaskFailed(c.NO_CONNECTION)
        fd_before = self.model.status().last_fd_number
        operation = _CORRECTION.get(kind) or _RECEIPT[kind]
        self.model.open_receipt(operation, correction=parsed["correction"])
        try:
            for item in parsed["items"]:
                self.model.add_item(item)
            for tag, value in parsed["requisites"]:
                self.model.add_requisite(tag, value)
            if self.faults.fire("lose_reply_before_close"):
                raise LinkLost(kind, fd_before)
            doc = self.model.close_receipt(parsed["payments"], parsed["tax_system"])
        except (DeviceStateError, RejectedError):
            # GUESS: like processJson, a failed receipt is cancelled — which needs paper, so after
            # paper ran out the receipt stays open until the operator cancels it
            if self.model.status().paper_ok:
                self.model.cancel_receipt()
            raise
        if self.faults.fire("lose_reply_after_close"):
            raise LinkLost(kind, fd_before)
        return {"fiscalParams": self.fiscal_params(doc), "warnings": {"notPrinted": False}}

    def _parse_receipt(self, task: dict[str, Any]) -> dict[str, Any]:
        """Validate the task's fields the way the driver does before touching the register."""
        try:
            tax_system = _TAXATION[task["taxationType"]]
        except KeyError:
            raise _bad("taxationType") from None
        if task.get("internet") and not (task.get("clientInfo") or {}).get("emailOrPhone"):
            raise TaskFailed(161, "clientInfo.emailOrPhone is required when internet=true")
        if task.get("internet") and not task.get("paymentsPlace"):
            raise TaskFailed(161, "paymentsPlace is required when internet=true")
        items: list[Item] = []
        requisites: list[tuple[int, Any]] = []
        for n, it in enumerate(task.get("items") or []):
            if not isinstance(it, dict):
                raise _bad(f"items[{n}]")
            if it.get("type") == "additionalAttribute":
                requisites.append((1192, str(it.get("value", ""))))
                continue
            if it.get("type") != "position":
                continue  # text, barcode …: printed only
            try:
                items.append(Item(
                    name=str(it["name"]), price=_dec(it["price"]), quantity=_dec(it["quantity"]),
                    amount=_dec(it["amount"]), vat=_TAX[it["tax"]["type"]],
                    payment_method=_METHOD[it.get("paymentMethod", "fullPayment")],
                    payment_subject=_OBJECT[it.get("paymentObject", "commodity")],
                    measure_unit=_UNIT[it.get("measurementUnit", "piece")],
                    **position_marking(it),   # imcParams / industryInfo (marking_emulation)
                ))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                raise _bad(f"items[{n}]") from None
        payments: list[Payment] = []
        for n, p in enumerate(task.get("payments") or []):
            try:
                payments.append(Payment(_PAYMENT[p["type"]], _dec(p["sum"])))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                raise _bad(f"payments[{n}]") from None
        if "total" in task:
            total = money(sum((i.amount for i in items), Decimal(0)))
            if _dec(task["total"]) != total:
                raise TaskFailed(c.INVALID_RECEIPT_TOTAL, f"total {task['total']} != positions {total}")
        if task.get("clientInfo", {}).get("emailOrPhone"):
            requisites.append((1008, task["clientInfo"]["emailOrPhone"]))
        if task.get("internet"):
            requisites.append((1125, 1))
        if task.get("paymentsPlace"):
            requisites.append((1187, task["paymentsPlace"]))
        if (task.get("companyInfo") or {}).get("email"):
            requisites.append((1117, task["companyInfo"]["email"]))
        op = task.get("operator") or {}
        if op.get("name"):
            requisites.append((1021, op["name"]))
        if op.get("vatin"):
            requisites.append((1203, op["vatin"]))
        correction = None
        if task["type"] in _CORRECTION:
            if task.get("correctionType") not in ("self", "instruction") or not task.get("correctionBaseDate"):
                raise TaskFailed(161, "correctionType and correctionBaseDate are required")
            correction = {"1173": 0 if task["correctionType"] == "self" else 1,
                          "1178": str(task["correctionBaseDate"]), "1179": str(task.get("correctionBaseNumber", ""))}
        return {"tax_system": tax_system, "items": items, "payments": payments, "requisites": requisites,
                "correction": correction}

    def _t_openShift(self, task: dict[str, Any]) -> dict[str, Any]:
        doc = self.model.open_shift((task.get("operator") or {}).get("name"))
        return {"fiscalParams": self.fiscal_params(doc)}

    def _t_closeShift(self, task: dict[str, Any]) -> dict[str, Any]:
        doc = self.model.close_shift((task.get("operator") or {}).get("name"))
        return {"fiscalParams": self.fiscal_params(doc)}

    def _t_reportX(self, task: dict[str, Any]) -> dict[str, Any]:
        self.model.x_report()
        return {}

    def _t_cancelReceipt(self, task: dict[str, Any]) -> dict[str, Any]:
        self.model.cancel_receipt()
        return {}

    def _t_continuePrint(self, task: dict[str, Any]) -> dict[str, Any]:
        if not self.model.status().paper_ok:
            raise TaskFailed(c.NO_PAPER)
        return {}

    # -- queries -----------------------------------------------------------------------------
    def _t_getShiftStatus(self, task: dict[str, Any]) -> dict[str, Any]:
        st = self.model.status()
        state = "closed" if not st.shift_open else ("expired" if st.shift_expired else "opened")
        out: dict[str, Any] = {"state": state, "number": st.shift_number}
        if st.shift_open and st.shift_opened_at:
            out["expiredTime"] = (st.shift_opened_at + SHIFT_MAX_AGE).isoformat()
        return {"shiftStatus": out}

    def _t_getFnStatus(self, task: dict[str, Any]) -> dict[str, Any]:
        st = self.model.status()
        receipts = [d for d in self.model.documents() if d["fn"] == st.fn_serial and d["kind"] in ("receipt", "correction")]
        return {"fnStatus": {"fiscalDocumentNumber": st.last_fd_number, "fiscalReceiptNumber": len(receipts),
                             "warnings": {}}}

    def _t_getFnInfo(self, task: dict[str, Any]) -> dict[str, Any]:
        st = self.model.status()
        return {"fnInfo": {"serial": st.fn_serial, "ffdVersion": "1.2", "fnFfdVersion": "1.2",
                           "livePhase": "fiscalMode", "validityDate": "2027-12-31T00:00:00", "warnings": {}}}

    def _t_getDeviceStatus(self, task: dict[str, Any]) -> dict[str, Any]:
        st = self.model.status()
        # UNVERIFIED: an open receipt reported as getDeviceStatus.receiptType (libfptr's
        # LIBFPTR_PARAM_RECEIPT_TYPE); the model does not tell which type, so "sell"
        receipt_type = "sell" if st.receipt_open else "closed"
        return {"deviceStatus": {
            "serialNumber": st.register_serial, "paperPresent": st.paper_ok, "coverOpened": False,
            "blocked": False, "fnPresent": True, "fiscal": True, "receiptType": receipt_type,
            "shift": "closed" if not st.shift_open else ("expired" if st.shift_expired else "opened"),
            "currentDateTime": dt.datetime.now().replace(microsecond=0).isoformat(),
        }}

    def _t_getFnDocument(self, task: dict[str, Any]) -> dict[str, Any]:
        try:
            number = int(task["fiscalDocumentNumber"])
        except (KeyError, TypeError, ValueError):
            raise _bad("fiscalDocumentNumber") from None
        doc = self.model.document(number)
        if doc is None:
            raise TaskFailed(c.FN_NO_MORE_DATA)
        return {"documentTLV": self.document_tlv(doc)}

    def _t_getLastFiscalParams(self, task: dict[str, Any]) -> dict[str, Any]:
        st = self.model.status()
        docs = [d for d in self.model.documents() if d["fn"] == st.fn_serial]
        if task.get("forReceipt"):
            docs = [d for d in docs if d["kind"] in ("receipt", "correction")]
        if not docs:
            raise TaskFailed(c.FN_NO_MORE_DATA)
        return {"fiscalParams": self.fiscal_params(docs[-1])}

    def _t_ofdExchangeStatus(self, task: dict[str, Any]) -> dict[str, Any]:
        # every emulated document counts as delivered to the OFD
        return {"status": {"notSentCount": 0, "notSentFirstDocNumber": 0,
                           "notSentFirstDocDateTime": "1970-01-01T00:00:00"}}

    # -- answers -----------------------------------------------------------------------------
    @staticmethod
    def fiscal_params(doc: dict[str, Any]) -> dict[str, Any]:
        """``fiscalParams`` of a journal record (UNVERIFIED: date-time without an offset)."""
        out: dict[str, Any] = {
            "fiscalDocumentNumber": doc["fd"], "fiscalDocumentSign": str(doc["fp"]),
            "fiscalDocumentDateTime": doc["dt"], "shiftNumber": doc["shift"], "fnNumber": doc["fn"],
            "registrationNumber": "0000000000000000", "fnsUrl": "www.nalog.gov.ru",
        }
        if doc["kind"] in ("receipt", "correction"):
            out["total"] = t.Money(doc["total"])
            out["fiscalReceiptNumber"] = doc["receipt_no"]
        return out

    @staticmethod
    def document_tlv(doc: dict[str, Any]) -> dict[str, Any]:
        """``documentTLV`` of a journal record: tag numbers as keys (KKTServiceLib FnDocumentConverter)."""
        tlv: dict[str, Any] = {
            "fiscalDocumentType": _FN_DOCUMENT_TYPES[doc["kind"]], "short": False,
            "1040": doc["fd"], "1077": doc["fp"], "1041": doc["fn"], "1012": doc["dt"], "1038": doc["shift"],
        }
        if doc["kind"] in ("receipt", "correction"):
            tlv.update({"1042": doc["receipt_no"], "1054": doc["operation"], "1020": t.Money(doc["total"]),
                        "1055": doc["tax_system"]})
            for tag, value in (doc.get("requisites") or {}).items():
                tlv.setdefault(tag, value)
            if doc.get("correction"):
                tlv.update(doc["correction"])
            when = dt.datetime.fromisoformat(doc["dt"])
            tlv["qr"] = (f"t={when:%Y%m%dT%H%M}&s={money(doc['total'])}&fn={doc['fn']}&i={doc['fd']}"
                         f"&fp={doc['fp']}&n={doc['operation']}")
        return tlv


def _dec(value: Any) -> Decimal:
    if isinstance(value, (bool, float)) or value is None:
        raise ValueError(f"not an exact number: {value!r}")
    return Decimal(str(value))
