"""The 54-FZ receipt model shared by every driver: pure, immutable data.

Money is ``Decimal`` quantized to kopecks and quantities ``Decimal`` quantized to 0.001 — never
float (:func:`money` and :func:`quantity` refuse one). Tag numbers (1054, 1199, …) follow the
FNS order ЕД-7-20/662@ and its 2024–2025 amendments; each driver maps the enums to its own codes.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from kkt_drivers.marking import MarkingCodeError, parse

KOPECK = Decimal("0.01")
QTY_STEP = Decimal("0.001")

#: requisite 1192 and the payment tag that rides in it
TAG_MAX_LEN = 16
#: requisite 1030
ITEM_NAME_MAX_LEN = 128
#: requisites 1008 / 1117
CONTACT_MAX_LEN = 64


def _exact(value: Decimal | int | str, step: Decimal, what: str) -> Decimal:
    if type(value) is Decimal and value.is_finite():   # the usual case (every Item field, twice)
        return value.quantize(step, rounding=ROUND_HALF_UP)
    if isinstance(value, float):
        raise TypeError(f"{what} must not be float (use Decimal, int or str)")
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"not {what}: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"not {what}: {value!r}")
    return d.quantize(step, rounding=ROUND_HALF_UP)


def money(value: Decimal | int | str) -> Decimal:
    """Return *value* as a Decimal quantized to kopecks; float is refused, not rounded."""
    return _exact(value, KOPECK, "an amount")


def quantity(value: Decimal | int | str) -> Decimal:
    """Return *value* as a Decimal quantity with three decimals; float is refused."""
    return _exact(value, QTY_STEP, "a quantity")


def kopecks(amount: Decimal) -> int:
    """Integer kopecks of a money Decimal (exact: the amount is already quantized)."""
    return int(money(amount) * 100)


class Operation(enum.IntEnum):
    """Requisite 1054, признак расчёта."""

    SALE = 1
    SALE_REFUND = 2
    EXPENSE = 3
    EXPENSE_REFUND = 4


class DocumentKind(enum.Enum):
    """What a fiscal document is; corrections are receipts with ``correction`` set."""

    RECEIPT = "receipt"
    CORRECTION = "correction"
    OPEN_SHIFT = "open_shift"
    CLOSE_SHIFT = "close_shift"


class TaxSystem(enum.IntEnum):
    """Requisite 1055 (bitmask, exactly one bit per receipt)."""

    OSN = 1
    USN_INCOME = 2
    USN_INCOME_OUTCOME = 4
    ESHN = 16
    PATENT = 32


class Vat(enum.Enum):
    """Requisite 1199 rates. The value is our stable name; :attr:`ffd_code` is the 1199 code."""

    VAT20 = "vat20"
    VAT10 = "vat10"
    VAT120 = "vat120"
    VAT110 = "vat110"
    VAT0 = "vat0"
    NONE = "none"
    VAT5 = "vat5"
    VAT7 = "vat7"
    VAT105 = "vat105"
    VAT107 = "vat107"
    VAT22 = "vat22"
    VAT122 = "vat122"

    @property
    def ffd_code(self) -> int:
        """The 1199 code (1 = 20 %, …, 11 = 22 %, 12 = 22/122)."""
        return _VAT_FFD[self]

    @property
    def percent(self) -> int | None:
        """The rate R in VAT = sum × R / (100 + R); None for "без НДС"."""
        return _VAT_PERCENT[self]

    @property
    def is_calculated(self) -> bool:
        """True for the calculated rates used on prepayments (5/105, 7/107, 10/110, 20/120, 22/122)."""
        return self in (Vat.VAT105, Vat.VAT107, Vat.VAT110, Vat.VAT120, Vat.VAT122)

    def vat_amount(self, amount: Decimal) -> Decimal:
        """VAT inside *amount* (requisite 1200), rounded half up to kopecks."""
        pct = self.percent
        if not pct:
            return Decimal("0.00")
        return money(amount * pct / (100 + pct))


_VAT_FFD = {
    Vat.VAT20: 1, Vat.VAT10: 2, Vat.VAT120: 3, Vat.VAT110: 4, Vat.VAT0: 5, Vat.NONE: 6,
    Vat.VAT5: 7, Vat.VAT7: 8, Vat.VAT105: 9, Vat.VAT107: 10, Vat.VAT22: 11, Vat.VAT122: 12,
}
_VAT_PERCENT = {
    Vat.VAT20: 20, Vat.VAT10: 10, Vat.VAT120: 20, Vat.VAT110: 10, Vat.VAT0: 0, Vat.NONE: None,
    Vat.VAT5: 5, Vat.VAT7: 7, Vat.VAT105: 5, Vat.VAT107: 7, Vat.VAT22: 22, Vat.VAT122: 22,
}


class PaymentMethod(enum.IntEnum):
    """Requisite 1214, признак способа расчёта."""

    FULL_PREPAYMENT = 1
    PARTIAL_PREPAYMENT = 2
    ADVANCE = 3
    FULL_PAYMENT = 4
    PARTIAL_PAYMENT_AND_CREDIT = 5
    CREDIT = 6
    CREDIT_PAYMENT = 7


class PaymentSubject(enum.IntEnum):
    """Requisite 1212 (the FFD 1.2 table; the values an e-shop uses are named)."""

    COMMODITY = 1
    EXCISE = 2
    JOB = 3
    SERVICE = 4
    PAYMENT = 10
    AGENT_COMMISSION = 11
    AWARD = 12
    ANOTHER = 13
    PROPERTY_RIGHT = 14
    NON_OPERATING_GAIN = 15
    OTHER_PAYMENT = 16
    DEPOSIT = 19
    EXPENSE = 20
    MARKED_EXCISE_NO_CODE = 30
    MARKED_EXCISE = 31
    MARKED_COMMODITY_NO_CODE = 32
    MARKED_COMMODITY = 33


class MeasureUnit(enum.IntEnum):
    """Requisite 2108 (FFD 1.2), мера количества."""

    PIECE = 0
    GRAM = 10
    KILOGRAM = 11
    TON = 12
    CENTIMETER = 20
    DECIMETER = 21
    METER = 22
    SQ_CENTIMETER = 30
    SQ_DECIMETER = 31
    SQ_METER = 32
    MILLILITER = 40
    LITER = 41
    CUBIC_METER = 42
    KWH = 50
    GCAL = 51
    DAY = 70
    HOUR = 71
    MINUTE = 72
    SECOND = 73
    KILOBYTE = 80
    MEGABYTE = 81
    GIGABYTE = 82
    TERABYTE = 83
    OTHER = 255


class PaymentType(enum.Enum):
    """How the total was paid: 1031 cash, 1081 electronic, 1215 prepayment offset, 1216 credit, 1217 other."""

    CASH = "cash"
    ELECTRONIC = "electronic"
    PREPAID = "prepaid"
    CREDIT = "credit"
    OTHER = "other"

    @property
    def ffd_tag(self) -> int:
        """The FFD requisite that carries a payment of this type."""
        return {"cash": 1031, "electronic": 1081, "prepaid": 1215, "credit": 1216, "other": 1217}[self.value]


class PlannedStatus(enum.IntEnum):
    """Requisite 2003, планируемый статус товара (marking.md §1.1)."""

    PIECE_SOLD = 1
    MEASURED_SOLD = 2
    PIECE_RETURNED = 3
    MEASURED_RETURNED = 4
    UNCHANGED = 255


#: payment subjects (1212) that must carry a marking code, and only they may (marking.md §1.1)
MARKED_SUBJECTS = (PaymentSubject.MARKED_COMMODITY, PaymentSubject.MARKED_EXCISE)
#: the FN's check table holds at most 128 codes per receipt (Shtrih error A3h, marking.md §1.3)
MAX_MARKED_PER_RECEIPT = 128
#: 2106 bits 0–3: checked, crypto part positive, status info received, status correct
MARKING_CHECK_POSITIVE = 0x0F


@dataclass(frozen=True)
class IndustryRequisite:
    """Requisite 1260 (item) / 1261 (receipt): 1262 ФОИВ id, 1263 document date, 1264 number, 1265 value.

    For the разрешительный режим: ("030", "21.11.2023", "1944", "UUID=<reqId>&Time=<ms>")
    (marking.md §2.4).
    """

    foiv: str
    doc_date: str
    doc_number: str
    value: str

    def problems(self, where: str) -> list[str]:
        """Length and format checks of the PRIL2 table (1262 = 3, 1263 = 10, 1264 ≤ 32, 1265 ≤ 256)."""
        out: list[str] = []
        if len(self.foiv) != 3 or not self.foiv.isdigit():
            out.append(f"{where}.foiv: 1262 must be 3 digits, got {self.foiv!r}")
        try:
            dt.datetime.strptime(self.doc_date, "%d.%m.%Y")
        except ValueError:
            out.append(f"{where}.doc_date: 1263 must be ДД.ММ.ГГГГ, got {self.doc_date!r}")
        if not 1 <= len(self.doc_number) <= 32:
            out.append(f"{where}.doc_number: 1264 must be 1..32 characters")
        if not 1 <= len(self.value) <= 256:
            out.append(f"{where}.value: 1265 must be 1..256 characters")
        return out


#: the permit of the разрешительный режим (ПП РФ № 1944 of 21.11.2023; marking.md §2.4 ☑)
PERMIT_FOIV, PERMIT_DOC_DATE, PERMIT_DOC_NUMBER = "030", "21.11.2023", "1944"


@dataclass(frozen=True)
class Item:
    """One receipt line (requisite 1059).

    A marked unit (1212 = 33 or 31) carries its :attr:`marking_code` (raw bytes, GS included: tag
    2000 as sent to the FN); one code per line. :attr:`planned_status` (2003) defaults from the
    operation and the quantity (:meth:`status_for`); :attr:`fraction` (1291: 1293/1294) sells part
    of a piece-marked unit; :attr:`marking_result` (2106) is what an earlier check returned, when
    the caller has one; :attr:`industry` (1260) carries e.g. the permit of the разрешительный режим.
    """

    name: str
    price: Decimal
    quantity: Decimal
    amount: Decimal
    vat: Vat
    payment_method: PaymentMethod = PaymentMethod.FULL_PAYMENT
    payment_subject: PaymentSubject = PaymentSubject.COMMODITY
    measure_unit: MeasureUnit = MeasureUnit.PIECE
    marking_code: bytes | None = None
    planned_status: PlannedStatus | None = None
    #: 2102 режим обработки КМ: must be 0 (PRIL2 table 4)
    marking_mode: int = 0
    fraction: tuple[int, int] | None = None
    marking_result: int | None = None
    industry: tuple[IndustryRequisite, ...] = ()

    def __post_init__(self) -> None:
        # normalise so that equality and JSON round trips are exact
        object.__setattr__(self, "price", money(self.price))
        object.__setattr__(self, "quantity", quantity(self.quantity))
        object.__setattr__(self, "amount", money(self.amount))
        if self.marking_code is not None and not isinstance(self.marking_code, bytes):
            code = self.marking_code
            object.__setattr__(self, "marking_code", code.encode("latin-1") if isinstance(code, str)
                               else bytes(code))

    @property
    def marked(self) -> bool:
        """True for a line that carries a marking code."""
        return self.marking_code is not None

    def status_for(self, operation: "Operation") -> PlannedStatus:
        """The 2003 to send: explicit, or piece/measured × sold/returned (marking.md §2.2).

        GUESS: an expense refund (1054 = 4) moves goods out like a sale, an expense (3) in like a refund.
        """
        if self.planned_status is not None:
            return self.planned_status
        measured = self.fraction is not None or self.measure_unit != MeasureUnit.PIECE \
            or self.quantity != self.quantity.to_integral_value()
        if operation in (Operation.SALE_REFUND, Operation.EXPENSE):
            return PlannedStatus.MEASURED_RETURNED if measured else PlannedStatus.PIECE_RETURNED
        return PlannedStatus.MEASURED_SOLD if measured else PlannedStatus.PIECE_SOLD

    def marking_problems(self, where: str, operation: "Operation") -> list[str]:
        """The marking rules of one line; messages start with *where* (e.g. ``items[2]``)."""
        out: list[str] = []
        if self.payment_subject in MARKED_SUBJECTS and self.marking_code is None:
            out.append(f"{where}.marking_code: payment subject {int(self.payment_subject)} needs a marking code")
        if self.industry:
            for k, req in enumerate(self.industry):
                out.extend(req.problems(f"{where}.industry[{k}]"))
        if self.marking_code is None:
            if self.fraction is not None or self.planned_status is not None:
                out.append(f"{where}: fraction/planned_status only go with a marking code")
            return out
        if self.payment_subject not in MARKED_SUBJECTS:
            out.append(f"{where}.payment_subject: a line with a marking code must be 33 or 31, "
                       f"got {int(self.payment_subject)}")
        try:
            parse(self.marking_code, field=f"{where}.marking_code")
        except MarkingCodeError as exc:
            out.append(f"{exc.field}: {exc}")
        if self.marking_mode != 0:
            out.append(f"{where}.marking_mode: 2102 must be 0, got {self.marking_mode}")
        if self.fraction is not None:
            n, d = self.fraction
            if not (0 < n < d):
                out.append(f"{where}.fraction: 1293/1294 must satisfy 0 < numerator < denominator")
            elif self.quantity != quantity(Decimal(n) / Decimal(d)):
                out.append(f"{where}.quantity: {self.quantity} != fraction {n}/{d}")
            if self.measure_unit != MeasureUnit.PIECE:
                out.append(f"{where}.fraction: only a piece-marked unit is sold in parts")
        elif self.measure_unit == MeasureUnit.PIECE and self.quantity != 1:
            out.append(f"{where}.quantity: one marking code is one unit: quantity must be 1 "
                       f"(or a fraction), got {self.quantity}")
        status = self.status_for(operation)
        returning = operation in (Operation.SALE_REFUND, Operation.EXPENSE)
        allowed = ((PlannedStatus.PIECE_RETURNED, PlannedStatus.MEASURED_RETURNED) if returning
                   else (PlannedStatus.PIECE_SOLD, PlannedStatus.MEASURED_SOLD))
        if status not in allowed + (PlannedStatus.UNCHANGED,):
            out.append(f"{where}.planned_status: 2003 = {int(status)} does not fit operation {int(operation)}")
        return out


@dataclass(frozen=True)
class Payment:
    """One payment of the receipt total (1031/1081/1215/1216/1217)."""

    type: PaymentType
    amount: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", money(self.amount))


@dataclass(frozen=True)
class Correction:
    """Correction data (1173 type, 1178 date of the corrected settlement, 1179 FNS order number)."""

    self_made: bool
    corrected_date: dt.date
    order_number: str = ""


@dataclass(frozen=True)
class Receipt:
    """A receipt as the register must fiscalize it. Structural checks only; see :meth:`problems`."""

    operation: Operation
    tax_system: TaxSystem
    items: tuple[Item, ...]
    payments: tuple[Payment, ...]
    tag: str
    customer_contact: str | None = None
    settlement_place: str | None = None
    internet: bool = True
    company_email: str | None = None
    cashier: str | None = None
    cashier_inn: str | None = None
    correction: Correction | None = None

    @property
    def total(self) -> Decimal:
        """Requisite 1020: the sum of item amounts."""
        return money(sum((i.amount for i in self.items), Decimal(0)))

    @property
    def paid(self) -> Decimal:
        """The sum of all payments (must equal :attr:`total`)."""
        return money(sum((p.amount for p in self.payments), Decimal(0)))

    def problems(self) -> list[str]:
        """Arithmetic and size rules every driver relies on; an empty list means consistent.

        Each message starts with the field it is about, e.g. ``items[2].amount: …``.
        """
        out: list[str] = []
        if not self.tag or len(self.tag) > TAG_MAX_LEN:
            out.append(f"tag: must be 1..{TAG_MAX_LEN} characters, got {self.tag!r}")
        if not self.items:
            out.append("items: a receipt needs at least one item")
        for n, it in enumerate(self.items):
            if not it.name or len(it.name) > ITEM_NAME_MAX_LEN:
                out.append(f"items[{n}].name: must be 1..{ITEM_NAME_MAX_LEN} characters")
            if it.price < 0 or it.quantity <= 0 or it.amount < 0:
                out.append(f"items[{n}]: price/amount must be >= 0 and quantity > 0")
            if money(it.price * it.quantity) != it.amount:
                out.append(
                    f"items[{n}].amount: {it.amount} != price {it.price} x quantity {it.quantity}"
                )
        if self.total <= 0:
            out.append(f"total: must be positive, got {self.total}")
        if self.paid != self.total:
            out.append(f"payments: sum {self.paid} != receipt total {self.total}")
        if self.customer_contact is not None and len(self.customer_contact) > CONTACT_MAX_LEN:
            out.append(f"customer_contact: longer than {CONTACT_MAX_LEN} characters")
        out.extend(self.marking_problems())
        return out

    @property
    def marking_codes(self) -> list[bytes]:
        """The marking codes of the receipt, in line order."""
        return [i.marking_code for i in self.items if i.marking_code is not None]

    def marking_problems(self) -> list[str]:
        """Marking rules across the receipt: per line, no duplicate code, at most 128 codes."""
        out: list[str] = []
        seen: dict[bytes, int] = {}
        for n, it in enumerate(self.items):
            out.extend(it.marking_problems(f"items[{n}]", self.operation))
            if it.marking_code is not None:
                if it.marking_code in seen:
                    out.append(f"items[{n}].marking_code: the same code as items[{seen[it.marking_code]}]")
                seen.setdefault(it.marking_code, n)
        if len(seen) > MAX_MARKED_PER_RECEIPT:
            out.append(f"items: {len(seen)} marking codes, at most {MAX_MARKED_PER_RECEIPT} per receipt")
        return out


@dataclass(frozen=True)
class MarkingResult:
    """One marked line's check as the FN answered it: requisite 2106 for the code of ``items[line]``."""

    line: int
    code: bytes
    #: 2106 «результат проверки сведений о товаре» (bits: checked, crypto ok, status info, status ok, autonomous)
    result: int


@dataclass(frozen=True)
class FiscalDocument:
    """A document as the register's fiscal storage (ФН) holds it; the ground truth."""

    fd_number: int
    fiscal_sign: int
    fn_serial: str
    kind: DocumentKind
    issued_at: dt.datetime
    shift_number: int
    receipt_number: int | None = None
    operation: Operation | None = None
    total: Decimal | None = None
    tag: str | None = None
    #: the FN's check result (2106) of every marked line, when this call made the document (a
    #: document read back from the FN or found by key has none: the ledger keeps what it got)
    marking_results: tuple[MarkingResult, ...] = ()

    @property
    def qr(self) -> str | None:
        """The receipt's QR string (``t=…&s=…&fn=…&i=…&fp=…&n=…``), None for reports."""
        if self.kind not in (DocumentKind.RECEIPT, DocumentKind.CORRECTION) or self.total is None:
            return None
        return (
            f"t={self.issued_at:%Y%m%dT%H%M}&s={money(self.total)}&fn={self.fn_serial}"
            f"&i={self.fd_number}&fp={self.fiscal_sign}&n={int(self.operation or Operation.SALE)}"
        )


@dataclass(frozen=True)
class DeviceStatus:
    """What the worker checks before every receipt."""

    register_serial: str
    fn_serial: str
    last_fd_number: int
    shift_open: bool
    shift_number: int
    shift_opened_at: dt.datetime | None
    shift_expired: bool
    receipt_open: bool
    paper_ok: bool = True
    cover_closed: bool = True
    fn_ok: bool = True
    unsent_documents: int = 0
    model: str = ""
    #: the FN's validity end (Shtrih FF03, ATOL getFnInfo); None where the driver cannot tell
    fn_valid_until: dt.date | None = None
    #: when the oldest document not yet sent to the OFD was made; None when none or unknown
    ofd_oldest_unsent_at: dt.datetime | None = None
    #: the register's clock when it answered (naive local time, as registers keep it)
    register_time: dt.datetime | None = None
    #: marking (ФН-М): unsent notifications block checks when they pile up (Shtrih A2h, ATOL 407)
    marking_blocked: bool = False
    marking_unsent_notifications: int = 0
    extra: dict[str, str] = field(default_factory=dict)
