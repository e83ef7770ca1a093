"""What a shop's receipts look like (:class:`ReceiptConfig`) and how planned receipts are named.

Plain data and the tag rule, no validation of payment rows (that is :mod:`worker.receipts.sale` and
:mod:`worker.receipts.item`).
"""

from __future__ import annotations

from collections.abc import Mapping
import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kkt_drivers.receipt import (
    TAG_MAX_LEN,
    MeasureUnit,
    PaymentMethod,
    PaymentSubject,
    Receipt,
    TaxSystem,
    Vat,
)
from worker.receipts.plan import Stage
from worker.receipts.rules import (
    DEFAULT_LOCAL_TIMEZONE,
    DEFAULT_MEASURE_ALIASES,
    DEFAULT_METHOD_ALIASES,
    DEFAULT_SUBJECT_ALIASES,
    DEFAULT_VAT_ALIASES,
    InvalidPayment,
    normalise_aliases,
    parse_email,
)

#: providers' hard cap on lines per receipt (ATOL Online, T-Bank)
DEFAULT_MAX_ITEMS_PER_RECEIPT = 100
#: 1187 limit (Orange 243, ATOL 256: the stricter one)
SETTLEMENT_PLACE_MAX_LEN = 243

#: a payment fiscalized more than this many days after its local date becomes a correction receipt
#: (docs/receipts.md "Late payments": a compromise between "any later day" and routine outages)
DEFAULT_LATE_AFTER_DAYS = 30

_STAGE_LETTER = {Stage.SALE: "S", Stage.REFUND: "R", Stage.PREPAYMENT: "P", Stage.SETTLEMENT: "F",
                 Stage.CORRECTION: "C", Stage.EXTERNAL: "X"}

#: receipts.flow values: one full-payment receipt at payment, or prepayment then settlement at delivery
FLOW_SINGLE = "single"
FLOW_PREPAYMENT = "prepayment"
FLOWS = (FLOW_SINGLE, FLOW_PREPAYMENT)
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class ReceiptConfig:
    """What the shop's settings say about its receipts. Plain data; checked once at construction.

    Alias maps translate the shop's codes to our enums; keys are compared without case, spaces,
    '-' and '_'. A map given here *replaces* the default one — extend with
    ``{**DEFAULT_VAT_ALIASES, "НДС 22%": Vat.VAT22}``. Values may be the enum, its value or its name.
    """

    tax_system: TaxSystem
    default_vat: Vat
    settlement_place: str
    default_payment_method: PaymentMethod = PaymentMethod.FULL_PAYMENT
    default_payment_subject: PaymentSubject = PaymentSubject.COMMODITY
    company_email: str | None = None
    cashier: str | None = None
    cashier_inn: str | None = None
    max_items_per_receipt: int = DEFAULT_MAX_ITEMS_PER_RECEIPT
    #: "single" (1214 = 4 at payment) or "prepayment" (1214 = 1 at payment, 1214 = 4 at delivery, §4.5 B)
    flow: str = FLOW_SINGLE
    #: IANA zone of the place of settlement: the local date of every date rule (VAT of the day, lateness, 1178)
    timezone: str = DEFAULT_LOCAL_TIMEZONE
    #: days after its own local date from which a payment is fiscalized as a correction receipt (0 = next day)
    late_after_days: int = DEFAULT_LATE_AFTER_DAYS
    vat_aliases: Mapping[Any, Any] = field(default_factory=lambda: dict(DEFAULT_VAT_ALIASES), hash=False)
    method_aliases: Mapping[Any, Any] = field(
        default_factory=lambda: dict(DEFAULT_METHOD_ALIASES), hash=False
    )
    subject_aliases: Mapping[Any, Any] = field(
        default_factory=lambda: dict(DEFAULT_SUBJECT_ALIASES), hash=False
    )
    measure_aliases: Mapping[Any, Any] = field(
        default_factory=lambda: dict(DEFAULT_MEASURE_ALIASES), hash=False
    )

    def __post_init__(self) -> None:
        for name, cls in (
            ("tax_system", TaxSystem),
            ("default_vat", Vat),
            ("default_payment_method", PaymentMethod),
            ("default_payment_subject", PaymentSubject),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"{name}: must be a {cls.__name__}, got {getattr(self, name)!r}")
        place = self.settlement_place
        if (
            not isinstance(place, str)
            or not place.startswith(("https://", "http://"))
            or len(place) > SETTLEMENT_PLACE_MAX_LEN
            or any(c.isspace() for c in place)
        ):
            raise ValueError(f"settlement_place: must be the shop's site URL (1187), got {place!r}")
        if self.company_email is not None:
            try:
                parse_email(self.company_email, "company_email")
            except InvalidPayment as exc:
                raise ValueError(str(exc)) from None
        if self.cashier is not None and not (isinstance(self.cashier, str) and 0 < len(self.cashier) <= 64):
            raise ValueError("cashier: must be 1..64 characters (1021)")
        inn = self.cashier_inn
        if inn is not None and not (
            isinstance(inn, str) and len(inn) == 12 and inn.isascii() and inn.isdigit()
        ):
            raise ValueError("cashier_inn: must be 12 digits (1203)")
        if not isinstance(self.max_items_per_receipt, int) or self.max_items_per_receipt < 1:
            raise ValueError(f"max_items_per_receipt: must be >= 1, got {self.max_items_per_receipt!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"timezone: {self.timezone!r} is not an IANA time zone such as Europe/Moscow") from None
        if isinstance(self.late_after_days, bool) or not isinstance(self.late_after_days, int) \
                or self.late_after_days < 0:
            raise ValueError(f"late_after_days: must be a whole number of days >= 0, got {self.late_after_days!r}")
        if self.flow not in FLOWS:
            raise ValueError(f"flow: must be one of {', '.join(FLOWS)}, got {self.flow!r}")
        # normalise once so that lookups per line are plain dict hits
        object.__setattr__(self, "vat_aliases", normalise_aliases(self.vat_aliases, Vat))
        object.__setattr__(self, "method_aliases", normalise_aliases(self.method_aliases, PaymentMethod))
        object.__setattr__(self, "subject_aliases", normalise_aliases(self.subject_aliases, PaymentSubject))
        object.__setattr__(self, "measure_aliases", normalise_aliases(self.measure_aliases, MeasureUnit))


    @property
    def zone(self) -> dt.tzinfo:
        """The local zone of the place of settlement."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class PlannedReceipt:
    """One receipt the worker must fiscalize for a payment: stage, 1-based part, and the receipt.

    ``lines`` is the shop's line number of each receipt line (a refund finds the lines it mirrors by
    it, even when a discount split a line in two); ``warnings`` what the admin should know although
    the receipt is correct (a broken e-mail replaced by the phone, a late payment made a correction).
    """

    stage: str
    part: int
    receipt: Receipt
    lines: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()


def make_tag(source_id: int, stage: str, part: int) -> str:
    """The ≤16-character tag (1192) unique per (source id, stage, part).

    ``S<base36 id>`` for sale part 1, ``S<id>.2`` for part 2, ``R<id>`` for refunds (each refund row
    has its own source id). '.' is not a base36 digit, so tags of different parts never collide.
    """
    if stage not in _STAGE_LETTER:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(_STAGE_LETTER)}")
    if not isinstance(source_id, int) or isinstance(source_id, bool) or source_id < 0:
        raise ValueError(f"source id must be a non-negative int, got {source_id!r}")
    if not isinstance(part, int) or isinstance(part, bool) or part < 1:
        raise ValueError(f"part must be a positive int, got {part!r}")
    digits, n = "", source_id
    while True:
        n, r = divmod(n, 36)
        digits = _B36[r] + digits
        if not n:
            break
    tag = _STAGE_LETTER[stage] + digits + (f".{part}" if part > 1 else "")
    if len(tag) > TAG_MAX_LEN:
        raise ValueError(f"tag {tag!r} is longer than {TAG_MAX_LEN} characters")
    return tag
