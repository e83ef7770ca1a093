"""KKMServer's JSON commands: pure mapping receipt → command and answer → FiscalDocument.

No I/O here: everything is testable on dicts. The field names follow KKMServer's own command
descriptions as reproduced by public clients (salesduck/kkmserver-types, Muraveiko/kkmserver; see
``/work/shared/reference/register-apis.md`` §3). Places where the shape is our guess are marked.

Money goes out as JSON *numbers* written from ``Decimal`` (``900.00``, never through float) and
answers are parsed with ``parse_float=Decimal``.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from kkt_drivers.errors import DeviceStateError, KktError, OutcomeUnknownError, RejectedError, TransientError
from kkt_drivers.receipt import (
    PERMIT_DOC_DATE, PERMIT_DOC_NUMBER, PERMIT_FOIV, DocumentKind, FiscalDocument, Item, Operation, PaymentType,
    Receipt, TaxSystem, Vat, money,
)

# -- answer statuses (``Status``) -------------------------------------------------------------
STATUS_OK = 0
STATUS_RUNNING = 1
STATUS_ERROR = 2
STATUS_NOT_FOUND = 3
STATUS_NOT_STARTED = 4
#: a command with this IdCommand already ran (or runs now); the answer carries no result
STATUS_ALREADY_DONE = 5
PENDING = (STATUS_RUNNING, STATUS_NOT_STARTED)
_STATUSES = (STATUS_OK, STATUS_RUNNING, STATUS_ERROR, STATUS_NOT_FOUND, STATUS_NOT_STARTED, STATUS_ALREADY_DONE)

#: ``Timeout`` = 1 asks KKMServer not to wait for the result (asynchronous call)
ASYNC_TIMEOUT_S = 1  # (the URL option wait=1)
#: the length KKMServer documents for ``IdCommand`` ("любая строка из 40 символов")
ID_COMMAND_MAX_LEN = 40

# -- TypeCheck (requisite 1054 plus the correction flag) --------------------------------------
TYPE_CHECK: dict[tuple[Operation, bool], int] = {
    (Operation.SALE, False): 0, (Operation.SALE_REFUND, False): 1,
    (Operation.EXPENSE, False): 10, (Operation.EXPENSE_REFUND, False): 11,
    (Operation.SALE, True): 2, (Operation.SALE_REFUND, True): 3,
    (Operation.EXPENSE, True): 12, (Operation.EXPENSE_REFUND, True): 13,
}
TYPE_CHECK_BACK = {v: k for k, v in TYPE_CHECK.items()}

#: Register.Tax: the VAT rate in percent, -1 for "без НДС", 110/120 for the calculated rates.
# GUESS: 5/7/105/107/22/122 follow the same convention as 10/20/110/120 (the public typings list
# only -1, 0, 10, 20, 110, 120; KKMServer added the 2025–2026 rates later).
TAX: dict[Vat, int] = {
    Vat.NONE: -1, Vat.VAT0: 0, Vat.VAT10: 10, Vat.VAT20: 20, Vat.VAT110: 110, Vat.VAT120: 120,
    Vat.VAT5: 5, Vat.VAT7: 7, Vat.VAT105: 105, Vat.VAT107: 107, Vat.VAT22: 22, Vat.VAT122: 122,
}
TAX_BACK = {v: k for k, v in TAX.items()}

#: TaxVariant (СНО): 0 ОСН, 1 УСН доход, 2 УСН доход-расход, 3 ЕНВД, 4 ЕСХН, 5 патент
TAX_VARIANT: dict[TaxSystem, str] = {
    TaxSystem.OSN: "0", TaxSystem.USN_INCOME: "1", TaxSystem.USN_INCOME_OUTCOME: "2",
    TaxSystem.ESHN: "4", TaxSystem.PATENT: "5",
}
TAX_VARIANT_BACK = {v: k for k, v in TAX_VARIANT.items()}

#: payment fields of RegisterCheck (1031, 1081, 1215, 1216, 1217)
PAYMENT_FIELD: dict[PaymentType, str] = {
    PaymentType.CASH: "Cash", PaymentType.ELECTRONIC: "ElectronicPayment",
    PaymentType.PREPAID: "AdvancePayment", PaymentType.CREDIT: "Credit", PaymentType.OTHER: "CashProvision",
}

#: FFD document types (tag 1000 values), used in our GetDataCheck answer
# GUESS: the field name ``TypeDocument`` in GetDataCheck's answer is ours; the codes are the FFD's.
DOC_OPEN_SHIFT, DOC_RECEIPT, DOC_CLOSE_SHIFT, DOC_CORRECTION = 2, 3, 5, 31
DOC_KIND = {DOC_OPEN_SHIFT: DocumentKind.OPEN_SHIFT, DOC_RECEIPT: DocumentKind.RECEIPT,
            DOC_CLOSE_SHIFT: DocumentKind.CLOSE_SHIFT, DOC_CORRECTION: DocumentKind.CORRECTION}
DOC_TYPE = {v: k for k, v in DOC_KIND.items()}

#: Info.SessionState of GetDataKKT
SESSION_CLOSED, SESSION_OPEN, SESSION_EXPIRED = 1, 2, 3


class AnswerError(Exception):
    """An answer is not what KKMServer sends (not JSON, a field missing or malformed)."""


# -- JSON with exact money ---------------------------------------------------------------------
def dumps(obj: Any) -> bytes:
    """JSON with ``Decimal`` written as a plain number (``900.00``); float is refused."""
    return _encode(obj).encode("utf-8")


def _encode(obj: Any) -> str:
    if isinstance(obj, bool) or obj is None:
        return json.dumps(obj)
    if isinstance(obj, float):
        raise TypeError("float must not reach the wire; use Decimal")
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"not a JSON number: {obj}")
        return format(obj, "f")
    if isinstance(obj, (int, str)):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_encode(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in obj) + "]"
    raise TypeError(f"cannot encode {type(obj).__name__}")


def loads(data: bytes | str) -> Any:
    """Parse JSON with every fractional number as ``Decimal``; AnswerError if it is not JSON."""
    try:
        return json.loads(data, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AnswerError(f"not JSON: {exc}") from exc


# -- requests ------------------------------------------------------------------------------------
def idempotency_key(receipt: Receipt, prefix: str = "kktw") -> str:
    """``IdCommand`` for *receipt*: the same for every attempt, distinct per tag, operation and kind.

    The tag (1192, ≤ 16 characters) is unique per receipt in the ledger; the operation and the
    correction flag keep a refund or a correction with a reused tag apart.
    """
    kind = "c" if receipt.correction else "r"
    key = f"{prefix}-{kind}{int(receipt.operation)}-{receipt.tag}"
    if len(key) > ID_COMMAND_MAX_LEN:
        raise ValueError(f"IdCommand {key!r} is longer than {ID_COMMAND_MAX_LEN} characters")
    return key


def envelope(command: str, num_device: int, id_command: str, timeout_s: int, **fields: Any) -> dict[str, Any]:
    """The fields every command carries, then the command's own."""
    return {"Command": command, "NumDevice": num_device, "IdCommand": id_command, "Timeout": timeout_s, **fields}


def register_check(receipt: Receipt, *, num_device: int, id_command: str, timeout_s: int,
                   accept_on_bad: bool = False) -> dict[str, Any]:
    """The ``RegisterCheck`` command for *receipt* (marked lines carry ``GoodCodeData``)."""
    strings = [{"Register": {
        "Name": it.name, "Quantity": it.quantity, "Price": it.price, "Amount": it.amount,
        "Department": 0, "Tax": TAX[it.vat], "SignMethodCalculation": int(it.payment_method),
        "SignCalculationObject": int(it.payment_subject), "MeasureOfQuantity": int(it.measure_unit),
        **({"GoodCodeData": {**good_code_data(it.marking_code, accept_on_bad=accept_on_bad),
                             **industry_props(n, it)}}
           if it.marking_code is not None else industry_props(n, it)),
    }} for n, it in enumerate(receipt.items)]
    cmd = envelope(
        "RegisterCheck", num_device, id_command, timeout_s,
        IsFiscalCheck=True, TypeCheck=TYPE_CHECK[(receipt.operation, receipt.correction is not None)],
        # an unfinished receipt left by an earlier failure is annulled, never completed
        CancelOpenedCheck=True, NotPrint=False, NumberCopies=0,
        CashierName=receipt.cashier or "", CashierVATIN=receipt.cashier_inn or "",
        TaxVariant=TAX_VARIANT[receipt.tax_system], AdditionalAttribute=receipt.tag, CheckStrings=strings,
    )
    if receipt.internet:
        cmd["InternetMode"] = True  # 1125 «расчёт в сети Интернет»
    if receipt.customer_contact:
        cmd["ClientAddress"] = receipt.customer_contact
    if receipt.settlement_place:
        cmd["PlaceMarket"] = receipt.settlement_place
    if receipt.company_email:
        cmd["SenderEmail"] = receipt.company_email
    if receipt.correction is not None:
        c = receipt.correction
        cmd["CorrectionType"] = 0 if c.self_made else 1
        cmd["CorrectionBaseDate"] = f"{c.corrected_date.isoformat()}T00:00:00"
        cmd["CorrectionBaseNumber"] = c.order_number
    for field, total in _payments(receipt).items():
        cmd[field] = total
    return cmd


def marking_text(code: bytes) -> str:
    """A code as KKMServer's ``BarCode`` takes it: the raw scanner string, GS kept (KKMS ✅)."""
    return code.decode("ascii")


def good_code_data(code: bytes, *, accept_on_bad: bool) -> dict[str, Any]:
    """``GoodCodeData`` of a marked line: ``BarCode``, ``ContainsSerialNumber``, ``AcceptOnBad``.

    ``AcceptOnBad`` (FFD 1.2: register even if the check failed) follows the register URL's
    ``marking_unanswered=sell``; GUESS: KKMServer applies it to a timed-out check as well.
    """
    return {"BarCode": marking_text(code), "ContainsSerialNumber": True, "AcceptOnBad": accept_on_bad}


#: 1262 / 1263 / 1264 of the разрешительный режим as KKMServer fills them itself: its data contract has
#: ``Props1262 = "030"``, ``Props1263 = "21.11.2023"``, ``Props1264 = "1944"`` as plain fields (no
#: DataMember: not read from the JSON) set from its own settings (marking.md §5 ⚠ decompiled contract)
KKMS_PERMIT_DOC = (PERMIT_FOIV, PERMIT_DOC_DATE, PERMIT_DOC_NUMBER)


def industry_props(n: int, item: Item) -> dict[str, Any]:
    """1260 of a line as KKMServer takes it: ``GoodCodeData.IndustryProps`` = 1265 only.

    KKMServer writes 1260 = {1262, 1263, 1264 from its settings, 1265 = ``IndustryProps``} for a line
    whose ``GoodCodeData`` has ``IndustryProps``, and then skips its own разрешительный режим check
    («Проверка произведена вне KkmServer»; decompiled contract ⚠). Anything it cannot carry is refused
    by field, never dropped: 1260 on a line without a code, more than one 1260, or 1262–1264 other than
    the permit's ("030", "21.11.2023", "1944").
    """
    if not item.industry:
        return {}
    where = f"items[{n}].industry"
    if item.marking_code is None:
        raise RejectedError(f"{where}: KKMServer carries 1260 only in GoodCodeData, i.e. on a marked line",
                            field=where)
    if len(item.industry) != 1:
        raise RejectedError(f"{where}: KKMServer carries one 1260 per line, got {len(item.industry)}", field=where)
    req = item.industry[0]
    if (req.foiv, req.doc_date, req.doc_number) != KKMS_PERMIT_DOC:
        raise RejectedError(f"{where}: KKMServer takes only 1265 (IndustryProps); 1262/1263/1264 come from its "
                            f"settings ({'/'.join(KKMS_PERMIT_DOC)}), got {req.foiv}/{req.doc_date}/{req.doc_number}",
                            field=where)
    return {"IndustryProps": req.value}


def validation_marking_code(receipt: Receipt, *, num_device: int, id_command: str, timeout_s: int) -> dict[str, Any]:
    """``ValidationMarkingCode`` for every marked line (KKMS ✅ field names; ``WaitForResult`` is
    in the decompiled contract only, UNVERIFIED)."""
    datas = [{"Name": it.name, "BarCode": marking_text(it.marking_code), "Quantity": it.quantity,
              "MeasureOfQuantity": int(it.measure_unit)}
             for it in receipt.items if it.marking_code is not None]
    return envelope("ValidationMarkingCode", num_device, id_command, timeout_s, GoodCodeDatas=datas,
                    WaitForResult=True)


def validation_results(answer: Any) -> dict[str, tuple[int, str]]:
    """``MarkingCodeValidation[]`` as BarCode → (2106, DecryptionResult); AnswerError when malformed."""
    rows = require(answer, "MarkingCodeValidation", list)
    out: dict[str, tuple[int, str]] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise AnswerError("MarkingCodeValidation rows must be objects")
        out[str(require(row, "BarCode", str))] = (int(require(row, "ValidationResult", int)),
                                                  str(row.get("DecryptionResult", "")))
    return out


def _payments(receipt: Receipt) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for p in receipt.payments:
        field = PAYMENT_FIELD[p.type]
        out[field] = money(out.get(field, Decimal(0)) + p.amount)
    return out


# -- answers ---------------------------------------------------------------------------------------
def require(answer: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """``answer[key]`` of type *kind*, or AnswerError naming the field."""
    if not isinstance(answer, dict):
        raise AnswerError(f"answer is {type(answer).__name__}, not an object")
    value = answer.get(key)
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise AnswerError(f"field {key!r} is a boolean")
    if not isinstance(value, kind):
        raise AnswerError(f"field {key!r} missing or malformed: {value!r}")
    return value


def status_of(answer: Any) -> int:
    """The answer's ``Status`` (0 done, 1 running, 2 error, 3 not found, 4 not started, 5 already done)."""
    st = require(answer, "Status", int)
    if st not in _STATUSES:
        raise AnswerError(f"unknown Status {st}")
    return st


def parse_qr(qr: str) -> dict[str, str]:
    """Split the QR string ``t=…&s=…&fn=…&i=…&fp=…&n=…`` into its fields."""
    return dict(parse_qsl(qr, keep_blank_values=True))


def _qr_time(t: str) -> dt.datetime:
    for fmt in ("%Y%m%dT%H%M%S", "%Y%m%dT%H%M"):
        try:
            return dt.datetime.strptime(t, fmt)
        except ValueError:
            continue
    raise AnswerError(f"QRCode time {t!r} is not YYYYMMDDTHHMM[SS]")


def document_from_answer(answer: Any, *, kind: DocumentKind, tag: str | None = None,
                         need_shift: bool = True) -> FiscalDocument:
    """A :class:`FiscalDocument` from the answer to RegisterCheck / OpenShift / CloseShift / GetDataCheck.

    The FD number, fiscal sign, FN serial, time, total and operation come from ``QRCode`` (the
    FNS format every register prints); shift and receipt numbers from ``SessionNumber`` /
    ``SessionCheckNumber``. AnswerError names what is missing. *need_shift* False: an answer
    without ``SessionNumber`` gives shift 0 (GetDataCheck's answer has none).
    """
    qr = parse_qr(require(answer, "QRCode", str))
    try:
        fd = int(qr["i"])
        fp = int(qr["fp"])
        fn = qr["fn"]
        issued = _qr_time(qr["t"])
    except (KeyError, ValueError) as exc:
        raise AnswerError(f"QRCode {answer.get('QRCode')!r} lacks t/fn/i/fp") from exc
    if need_shift or answer.get("SessionNumber") is not None:
        shift = require(answer, "SessionNumber", int)
    else:
        shift = 0
    total: Decimal | None = None
    operation: Operation | None = None
    receipt_no: int | None = None
    if kind in (DocumentKind.RECEIPT, DocumentKind.CORRECTION):
        try:
            total = money(qr["s"])
            operation = Operation(int(qr["n"]))
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise AnswerError(f"QRCode {answer.get('QRCode')!r} lacks s/n of a receipt") from exc
        sc = answer.get("SessionCheckNumber")
        receipt_no = sc if isinstance(sc, int) and not isinstance(sc, bool) else None
    return FiscalDocument(fd_number=fd, fiscal_sign=fp, fn_serial=fn, kind=kind, issued_at=issued,
                          shift_number=shift, receipt_number=receipt_no, operation=operation, total=total, tag=tag)


def checked_document(answer: Any, receipt: Receipt) -> FiscalDocument:
    """The document made for *receipt*; AnswerError if the answer does not describe it."""
    kind = DocumentKind.CORRECTION if receipt.correction else DocumentKind.RECEIPT
    doc = document_from_answer(answer, kind=kind, tag=receipt.tag)
    if doc.operation != receipt.operation:
        raise AnswerError(f"answer is for operation {doc.operation}, the receipt is {receipt.operation}")
    return doc


#: TypeCheck codes of correction receipts
CORRECTION_TYPE_CHECKS = {code for (_, corr), code in TYPE_CHECK.items() if corr}


def stored_document(answer: Any) -> FiscalDocument:
    """A document read back with GetDataCheck.

    KKMServer answers GetDataCheck with ``QRCode``, ``URL``, ``Slip`` and a ``RegisterCheck``
    object (``FiscalNumber``, ``FiscalDate``, ``CheckType``, ``FiscalSign``, the cashier and client
    fields, ``Register[]`` lines, the payment sums, ``AllSumm``) — the field list of its result
    class for this command as published in public code; no ``SessionNumber``.
    """
    check = answer.get("RegisterCheck") if isinstance(answer, dict) else None
    if isinstance(check, dict):
        # GUESS: CheckType carries the TypeCheck code as a string ("0", "2", …); a text naming a
        # correction ("Коррекция …") is accepted too
        ctype = str(check.get("CheckType", ""))
        corr = (ctype.isdigit() and int(ctype) in CORRECTION_TYPE_CHECKS) or "оррекц" in ctype
        kind = DocumentKind.CORRECTION if corr else DocumentKind.RECEIPT
        # GUESS: 1192 comes back as AdditionalAttribute; KKMServer's published result class has no
        # such field, so against a real server this may stay None (recovery then relies on GetRezult)
        tag = check.get("AdditionalAttribute") if isinstance(check.get("AdditionalAttribute"), str) else None
    else:
        # GUESS: a shift report read back; ``TypeDocument`` (FFD codes 2/5) is the emulator's own field
        type_doc = require(answer, "TypeDocument", int)
        if type_doc not in DOC_KIND:
            raise AnswerError(f"unknown TypeDocument {type_doc}")
        kind, tag = DOC_KIND[type_doc], None
    return document_from_answer(answer, kind=kind, tag=tag or None, need_shift=False)


# -- errors ------------------------------------------------------------------------------------------
_DEVICE_TEXTS = (
    (re.compile(r"бумаг|paper", re.I), DeviceStateError.COND_PAPER_OUT),
    (re.compile(r"24 час|превысил", re.I), DeviceStateError.COND_SHIFT_EXPIRED),
    (re.compile(r"смена (закрыта|не открыта)", re.I), DeviceStateError.COND_SHIFT_CLOSED),
    (re.compile(r"смена (уже )?открыта", re.I), DeviceStateError.COND_SHIFT_OPEN),
    (re.compile(r"открыт чек|чек (уже )?открыт", re.I), DeviceStateError.COND_RECEIPT_OPEN),
    (re.compile(r"крышк", re.I), DeviceStateError.COND_COVER_OPEN),
    # marking blocked by unsent notifications (Shtrih A2h wording; ATOL 407 «временно заблокирована»)
    (re.compile(r"маркир\w*.*заблокирован", re.I), "marking_blocked"),
    (re.compile(r"(?<!\w)фн(?!\w)|фискальн\w* накопител", re.I), DeviceStateError.COND_FN_ERROR),
)
#: an error text that says the link to the register broke: the register may have acted
_LINK_LOST = re.compile(r"связ|таймаут|тайм-аут|timeout|не отвечает", re.I)


def error_for(text: str, *, fiscal: bool) -> KktError:
    """Classify KKMServer's ``Error`` text of a finished (Status 2) command.

    GUESS: KKMServer passes the register's own error text through; the patterns are the Russian
    wording registers use (paper, shift, FN, cover). A broken link is OutcomeUnknownError for a
    fiscal command and TransientError otherwise; any other error is the register refusing the data.
    """
    msg = f"KKMServer: {text or 'error without text'}"
    for pattern, condition in _DEVICE_TEXTS:
        if pattern.search(text):
            return DeviceStateError(msg, condition=condition, vendor_code=text[:200])
    if _LINK_LOST.search(text):
        return OutcomeUnknownError(msg, vendor_code=text[:200]) if fiscal else TransientError(msg, vendor_code=text[:200])
    return RejectedError(msg, vendor_code=text[:200])
