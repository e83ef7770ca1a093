"""KKMServer's commands executed on the shared register model (no HTTP here; see ``server.py``).

:class:`Device` is one register of the pool (``NumDevice``); :meth:`Device.execute` takes a parsed
command and returns KKMServer's answer as a dict. A command that fails returns ``Status`` 2 with
an ``Error`` text in the register's own wording, so that the driver classifies it the way it
would classify a real register's message.

The ``before_close`` hook lets the server inject "the link died before the close" after the items
were registered (the receipt stays open on the register, as a real one would keep it).
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from kkt_drivers import marking_flow
from kkt_drivers.emulator.model import RegisterModel, to_fiscal_document
from kkt_drivers.errors import DeviceStateError, RejectedError
from kkt_drivers.kkmserver import commands as c
from kkt_drivers.kkmserver import counters as kkm_counters
from kkt_drivers.receipt import (
    DocumentKind, IndustryRequisite, Item, MeasureUnit, Payment, PaymentMethod, PaymentSubject, PaymentType, TaxSystem, Vat,
)

_VAT_BY_FFD = {v.ffd_code: v for v in Vat}

#: the register's wording for each condition of the model (what the driver's patterns match)
CONDITION_TEXT = {
    DeviceStateError.COND_PAPER_OUT: "Нет бумаги",
    DeviceStateError.COND_SHIFT_EXPIRED: "Смена превысила 24 часа, закройте смену",
    DeviceStateError.COND_SHIFT_CLOSED: "Смена закрыта, операция невозможна",
    DeviceStateError.COND_SHIFT_OPEN: "Смена уже открыта",
    DeviceStateError.COND_RECEIPT_OPEN: "Открыт чек, операция невозможна",
    DeviceStateError.COND_FN_ERROR: "Ошибка ФН: документ не принят",
    # GUESS: the register's own wording (Shtrih A2h) passed through
    "marking_blocked": "Работа с маркированными товарами временно заблокирована",
}
LINK_LOST_TEXT = "Потеряна связь с ККТ"
#: GUESS: the register's tax systems as GetDataKKT lists them ("0,1,2,4,5")
DEFAULT_TAX_VARIANTS = "0,1,2,4,5"
#: GUESS: the tax system of a check whose TaxVariant is "" (the register's default)
DEFAULT_TAX_SYSTEM = TaxSystem.OSN


def _industry(good: dict[str, Any] | None) -> tuple[IndustryRequisite, ...]:
    """1260 of a line as KKMServer writes it: 1262–1264 from its settings (the permit's defaults in its
    data contract), 1265 = ``IndustryProps`` (+ ``AddIndustryProps`` appended, as KKMServer does)."""
    if not good or not good.get("IndustryProps"):
        return ()
    if not isinstance(good["IndustryProps"], str):
        raise BadCommand("IndustryProps должен быть строкой")
    value = good["IndustryProps"] + str(good.get("AddIndustryProps") or "")
    return (IndustryRequisite(*c.KKMS_PERMIT_DOC, value),)


class BadCommand(Exception):
    """The command's data is malformed: KKMServer answers Status 2 without touching the register."""


class InjectedLinkLoss(Exception):
    """The server's fault: the register link died before the close command (nothing fiscal)."""


class Device:
    """One register of the emulated KKMServer pool: commands are serial per device."""

    def __init__(self, num: int, model: RegisterModel, *, latency_s: float = 0.0) -> None:
        self.num = num
        self.model = model
        self.latency_s = latency_s
        self.lock = threading.Lock()

    # -- entry point -------------------------------------------------------------------------------
    def execute(self, cmd: dict[str, Any], before_close: Callable[[], None] | None = None,
                on_start: Callable[[], None] | None = None) -> dict[str, Any]:
        """Run *cmd* on this register; always returns an answer (Status 0 or 2).

        *on_start* is called once the register is free for this command (queued → running).
        """
        name = cmd["Command"]
        base = {"Command": name, "IdCommand": cmd.get("IdCommand", ""), "NumDevice": self.num,
                "Error": "", "Warning": "", "Message": "", "Status": c.STATUS_OK}
        handler = HANDLERS[name]
        with self.lock:
            if on_start is not None:
                on_start()
            if self.latency_s:
                time.sleep(self.latency_s)  # a slow register: the server answers "running" meanwhile
            try:
                base.update(handler(self, cmd, before_close))
            except InjectedLinkLoss:
                base.update(Status=c.STATUS_ERROR, Error=LINK_LOST_TEXT)
            except DeviceStateError as exc:
                base.update(Status=c.STATUS_ERROR, Error=CONDITION_TEXT.get(exc.condition, f"Ошибка ККТ: {exc}"))
            except RejectedError as exc:
                base.update(Status=c.STATUS_ERROR, Error=f"Неверные данные чека: {exc}")
            except BadCommand as exc:
                base.update(Status=c.STATUS_ERROR, Error=f"Ошибка в команде: {exc}")
        return base

    # -- commands ------------------------------------------------------------------------------------
    def get_data_kkt(self, cmd: dict[str, Any], _: Any) -> dict[str, Any]:
        st = self.model.status()
        state = c.SESSION_CLOSED if not st.shift_open else (c.SESSION_EXPIRED if st.shift_expired else c.SESSION_OPEN)
        return {
            # UNVERIFIED: CheckNumber here is "номер последнего документа" = the last FD number
            "CheckNumber": st.last_fd_number, "SessionNumber": st.shift_number, "LineLength": 48, "URL": "",
            "Info": {
                "KktNumber": st.register_serial, "FnNumber": st.fn_serial, "RegNumber": "0000000001012345",
                "InnOrganization": "7700000000", "NameOrganization": "ООО «Эмулятор»",
                "TaxVariant": DEFAULT_TAX_VARIANTS, "SessionState": state, "PaperOver": not st.paper_ok,
                "FN_IsFiscal": True, "FN_MemOverflowl": False, "OFD_NumErrorDoc": st.unsent_documents,
                "FFDVersion": "1.2", "OnOff": True, "Active": True,
                # GUESS (emulator extra): KKMServer's Info has no "receipt open" field; a real
                # server annuls an unfinished receipt itself (CancelOpenedCheck), so this stays
                # absent there and the driver reads it as False
                "CheckOpened": st.receipt_open,
            },
        }

    def open_shift(self, cmd: dict[str, Any], _: Any) -> dict[str, Any]:
        return _shift_answer(self.model.open_shift(_text(cmd, "CashierName") or None))

    def close_shift(self, cmd: dict[str, Any], _: Any) -> dict[str, Any]:
        return _shift_answer(self.model.close_shift(_text(cmd, "CashierName") or None))

    def x_report(self, cmd: dict[str, Any], _: Any) -> dict[str, Any]:
        self.model.x_report()
        return {}

    def get_data_check(self, cmd: dict[str, Any], _: Any) -> dict[str, Any]:
        number = cmd.get("FiscalNumber", 0)
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise BadCommand("FiscalNumber должен быть целым числом >= 0")
        if number == 0:
            number = self.model.status().last_fd_number
        doc = self.model.document(number) if number else None
        if doc is None:
            # GUESS: the wording of "no such document"; the driver looks for "не найден"
            return {"Status": c.STATUS_ERROR, "Error": f"Документ № {number} не найден в ФН"}
        return _document_answer(doc)

    def register_check(self, cmd: dict[str, Any], before_close: Callable[[], None] | None) -> dict[str, Any]:
        if cmd.get("CancelOpenedCheck") is True:
            self.model.cancel_receipt()
        if cmd.get("IsFiscalCheck") is False:
            # GUESS: a non-fiscal check with no lines is how our driver annuls an open receipt
            return {"CheckNumber": 0, "SessionNumber": self.model.status().shift_number}
        parsed = parse_check(cmd)
        reg = self.model
        for item, accept_on_bad in parsed["marked"]:
            # RegisterCheck checks and accepts each GoodCodeData itself, before the receipt opens
            # GUESS: AcceptOnBad also covers a check ОИСМ did not answer
            r = reg.check_marking(item.marking_code, int(item.status_for(parsed["operation"])), 0)
            ok = r["result"] & 0x0F == 0x0F or (accept_on_bad and not r["result"] & 0x04)
            reg.decide_marking(ok)
            if not ok:
                raise RejectedError(f"код маркировки «{item.name}» не прошел проверку: "
                                    f"{marking_flow.describe_2106(r['result'])}")
        reg.open_receipt(parsed["operation"], correction=parsed["correction"])
        for item in parsed["items"]:
            reg.add_item(item)
        for tag, value in parsed["requisites"]:
            reg.add_requisite(tag, value)
        if before_close is not None:
            before_close()
        doc = reg.close_receipt(parsed["payments"], parsed["tax_system"])
        fdoc = to_fiscal_document(doc)
        answer: dict[str, Any] = {
            "CheckNumber": fdoc.fd_number, "SessionNumber": fdoc.shift_number,
            "SessionCheckNumber": fdoc.receipt_number, "QRCode": fdoc.qr,
            "URL": f"https://check.ofd.example/?fn={fdoc.fn_serial}&i={fdoc.fd_number}&fp={fdoc.fiscal_sign}",
        }
        for p in parsed["payments"]:
            answer[c.PAYMENT_FIELD[p.type]] = p.amount
        return answer


    def validation_marking_code(self, cmd: dict[str, Any], _: Any) -> dict[str, Any]:
        """``ValidationMarkingCode``: the FN check of each code; GUESS: nothing is kept accepted
        (RegisterCheck checks again), and the planned status is "piece sold"."""
        datas = cmd.get("GoodCodeDatas")
        if not isinstance(datas, list) or not datas:
            raise BadCommand("нет GoodCodeDatas")
        rows = []
        for d in datas:
            code = d.get("BarCode") if isinstance(d, dict) else None
            if not isinstance(code, str) or not code:
                raise BadCommand("не указан BarCode")
            r = self.model.check_marking(code.encode("latin-1", "replace"), 1, 0)
            self.model.decide_marking(False)
            rows.append({"Name": d.get("Name", ""), "BarCode": code, "ValidationResult": r["result"],
                         "DecryptionResult": marking_flow.describe_2106(r["result"])})
        return {"MarkingCodeValidation": rows}


HANDLERS: dict[str, Callable[[Device, dict[str, Any], Any], dict[str, Any]]] = {
    "ValidationMarkingCode": Device.validation_marking_code,
    "GetDataKKT": Device.get_data_kkt,
    "OpenShift": Device.open_shift,
    "CloseShift": Device.close_shift,
    "XReport": Device.x_report,
    "GetDataCheck": Device.get_data_check,
    "RegisterCheck": Device.register_check,
    "GetCounters": kkm_counters.get_counters,
}


# -- request parsing -----------------------------------------------------------------------------------
def _text(cmd: dict[str, Any], key: str) -> str:
    value = cmd.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadCommand(f"поле {key} должно быть строкой")
    return value


def _decimal(obj: dict[str, Any], key: str, *, required: bool = True) -> Decimal:
    value = obj.get(key)
    if value is None and not required:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise BadCommand(f"поле {key} должно быть числом, получено {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise BadCommand(f"поле {key}: {value!r}") from exc


def _enum(cls: Any, obj: dict[str, Any], key: str, default: Any) -> Any:
    value = obj.get(key)
    if value is None:
        return default
    try:
        return cls(value)
    except (ValueError, TypeError) as exc:
        raise BadCommand(f"поле {key}: недопустимое значение {value!r}") from exc


def parse_check(cmd: dict[str, Any]) -> dict[str, Any]:
    """RegisterCheck's fields as the model's operation, items, payments and requisites."""
    type_check = cmd.get("TypeCheck", 0)
    if type_check not in c.TYPE_CHECK_BACK:
        raise BadCommand(f"TypeCheck {type_check!r} не поддерживается")
    operation, is_correction = c.TYPE_CHECK_BACK[type_check]
    strings = cmd.get("CheckStrings")
    if not isinstance(strings, list):
        raise BadCommand("нет CheckStrings")
    items: list[Item] = []
    marked: list[tuple[Item, bool]] = []
    for line in strings:
        if not isinstance(line, dict):
            raise BadCommand("строка чека должна быть объектом")
        reg = line.get("Register")
        if reg is None:
            continue  # PrintText, BarCode…: printed only, not fiscal
        if not isinstance(reg, dict):
            raise BadCommand("Register должен быть объектом")
        tax = reg.get("Tax", -1)
        if tax not in c.TAX_BACK:
            raise BadCommand(f"Tax {tax!r} не поддерживается")
        name = reg.get("Name")
        if not isinstance(name, str) or not name:
            raise BadCommand("не указано Name")
        good = reg.get("GoodCodeData")
        if good is not None and not (isinstance(good, dict) and isinstance(good.get("BarCode"), str)):
            raise BadCommand("GoodCodeData должен содержать BarCode")
        try:
            items.append(Item(
                name, _decimal(reg, "Price"), _decimal(reg, "Quantity"), _decimal(reg, "Amount"), c.TAX_BACK[tax],
                payment_method=_enum(PaymentMethod, reg, "SignMethodCalculation", PaymentMethod.FULL_PAYMENT),
                payment_subject=_enum(PaymentSubject, reg, "SignCalculationObject", PaymentSubject.COMMODITY),
                measure_unit=_enum(MeasureUnit, reg, "MeasureOfQuantity", MeasureUnit.PIECE),
                marking_code=good["BarCode"].encode("latin-1", "replace") if good else None,
                industry=_industry(good)))
        except (ValueError, TypeError) as exc:
            raise BadCommand(str(exc)) from exc
        if good:
            marked.append((items[-1], good.get("AcceptOnBad") is True))
    payments = []
    for ptype, field in c.PAYMENT_FIELD.items():
        amount = _decimal(cmd, field, required=False)
        if amount:
            payments.append(Payment(ptype, amount))
    variant = cmd.get("TaxVariant", "")
    variant = "" if variant is None else str(variant)
    if variant and variant not in c.TAX_VARIANT_BACK:
        raise BadCommand(f"TaxVariant {variant!r} не поддерживается")
    correction = None
    if is_correction:
        base_date = _text(cmd, "CorrectionBaseDate")
        try:
            day = dt.datetime.fromisoformat(base_date).date()
        except ValueError as exc:
            raise BadCommand(f"CorrectionBaseDate {base_date!r}") from exc
        correction = {"1173": _enum(int, cmd, "CorrectionType", 0), "1178": day.isoformat(),
                      "1179": _text(cmd, "CorrectionBaseNumber")}
    requisites: list[tuple[int, Any]] = []
    for tag, field in ((1192, "AdditionalAttribute"), (1008, "ClientAddress"), (1187, "PlaceMarket"),
                       (1117, "SenderEmail"), (1021, "CashierName"), (1203, "CashierVATIN")):
        value = _text(cmd, field)
        if value:
            requisites.append((tag, value))
    if cmd.get("InternetMode") is True:
        requisites.append((1125, 1))
    return {"operation": operation, "correction": correction, "items": items, "payments": payments,
            "tax_system": c.TAX_VARIANT_BACK[variant] if variant else DEFAULT_TAX_SYSTEM,
            "requisites": requisites, "marked": marked}


# -- answers ---------------------------------------------------------------------------------------
def _shift_qr(doc: dict[str, Any]) -> str:
    when = dt.datetime.fromisoformat(doc["dt"])
    return f"t={when:%Y%m%dT%H%M}&fn={doc['fn']}&i={doc['fd']}&fp={doc['fp']}"


def _shift_answer(doc: dict[str, Any]) -> dict[str, Any]:
    return {"CheckNumber": doc["fd"], "SessionNumber": doc["shift"], "QRCode": _shift_qr(doc)}


def _document_answer(doc: dict[str, Any]) -> dict[str, Any]:
    """GetDataCheck's answer: the fields of KKMServer's published result class for it (QRCode,
    URL, Slip, RegisterCheck{…}), plus the emulator's own extras marked below."""
    fdoc = to_fiscal_document(doc)
    # GUESS (extras): SessionNumber/SessionCheckNumber/CheckNumber and TypeDocument are not in the
    # published class; the driver does not need them for receipts
    answer: dict[str, Any] = {"CheckNumber": fdoc.fd_number, "SessionNumber": fdoc.shift_number,
                              "TypeDocument": c.DOC_TYPE[fdoc.kind], "URL": ""}
    if fdoc.kind not in (DocumentKind.RECEIPT, DocumentKind.CORRECTION):
        answer["QRCode"] = _shift_qr(doc)
        answer["Slip"] = f"{'ОТКРЫТИЕ' if fdoc.kind is DocumentKind.OPEN_SHIFT else 'ЗАКРЫТИЕ'} СМЕНЫ {fdoc.shift_number}"
        return answer
    is_corr = fdoc.kind is DocumentKind.CORRECTION
    req = doc.get("requisites") or {}
    check: dict[str, Any] = {
        "FiscalNumber": str(fdoc.fd_number), "FiscalDate": fdoc.issued_at.isoformat(),
        # GUESS: CheckType as the TypeCheck code in a string
        "CheckType": str(c.TYPE_CHECK[(fdoc.operation, is_corr)]), "FiscalSign": str(fdoc.fiscal_sign),
        "CashierName": req.get("1021", ""), "CashierVATIN": req.get("1203", ""),
        "TaxVariant": c.TAX_VARIANT.get(TaxSystem(doc["tax_system"]), ""),
        "ClientAddress": req.get("1008", ""), "SenderEmail": req.get("1117", ""),
        "PlaceMarket": req.get("1187", ""),
        "Register": [{"Name": i["name"], "Quantity": Decimal(i["quantity"]), "Amount": Decimal(i["amount"]),
                      "Tax": c.TAX[_VAT_BY_FFD[i["vat"]]]} for i in doc["items"]],
        "AllSumm": Decimal(doc["total"]),
        # GUESS (extra): tag 1192 read back; not in the published class
        "AdditionalAttribute": doc.get("tag") or "",
    }
    for field in c.PAYMENT_FIELD.values():
        check[field] = Decimal(0)
    for p in doc["payments"]:
        field = c.PAYMENT_FIELD[PaymentType(p["type"])]
        check[field] = check[field] + Decimal(p["amount"])
    answer.update(SessionCheckNumber=fdoc.receipt_number, QRCode=fdoc.qr, RegisterCheck=check,
                  Slip="\n".join(f"{i['name']} {i['quantity']} x {i['price']} = {i['amount']}" for i in doc["items"]))
    return answer
