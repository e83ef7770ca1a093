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

KOPECK = Decimal("0.01")
QTY_STEP = Decimal("0.001")

#: requisite 1192 and the payment tag that rides in it
TAG_MAX_LEN = 16
#: requisite 1030
ITEM_NAME_MAX_LEN = 128
#: requisites 1008 / 1117
CONTACT_MAX_LEN = 64


def _exact(value: Decimal | int | str, step: Decimal, what: str) -> Decimal:
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


@dataclass(frozen=True)
class Item:
    """One receipt line (requisite 1059)."""

    name: str
    price: Decimal
    quantity: Decimal
    amount: Decimal
    vat: Vat
    payment_method: PaymentMethod = PaymentMethod.FULL_PAYMENT
    payment_subject: PaymentSubject = PaymentSubject.COMMODITY
    measure_unit: MeasureUnit = MeasureUnit.PIECE

    def __post_init__(self) -> None:
        # normalise so that equality and JSON round trips are exact
        object.__setattr__(self, "price", money(self.price))
        object.__setattr__(self, "quantity", quantity(self.quantity))
        object.__setattr__(self, "amount", money(self.amount))


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
        return out


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
    extra: dict[str, str] = field(default_factory=dict)
