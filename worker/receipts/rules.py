"""Field-level rules for turning a raw shop row into receipt data (used by :mod:`worker.receipts.sale`).

Every parser takes the raw value exactly as the database returned it plus the *field* name it
came from, and either returns a clean value or raises :class:`InvalidPayment` naming that field.
Nothing here coerces silently: a float is a bug upstream and is refused, not rounded; bytes are
accepted only when they are valid UTF-8.

Customer contacts never appear in clear in a message: see :func:`mask_contact`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from kkt_drivers.receipt import (
    CONTACT_MAX_LEN,
    ITEM_NAME_MAX_LEN,
    KOPECK,
    QTY_STEP,
    MeasureUnit,
    PaymentMethod,
    PaymentSubject,
    TaxSystem,
    Vat,
)
from worker.errors import WorkerError

#: 1079 / 1043 upper bound (ATOL Online, the strictest provider; 2^32 - 1 kopecks)
MAX_MONEY = Decimal("42949672.95")
#: 1023 upper bound (ATOL Online: 5 integer digits, 3 decimals)
MAX_QUANTITY = Decimal("99999.999")
#: the local zone of the place of settlement when ``receipts.timezone`` says nothing: every date rule
#: (VAT rate of the day, lateness, 1178) uses the local date there
DEFAULT_LOCAL_TIMEZONE = "Europe/Moscow"
SHOP_TZ = ZoneInfo(DEFAULT_LOCAL_TIMEZONE)
#: the 22 % rate (1199 = 11/12) starts and 20 % (1/3) ends at this local date (ЕД-7-20/1050@)
VAT22_FROM = dt.date(2026, 1, 1)

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    # labels are LDH; the top-level domain is letters or an IDN A-label (xn--p1ai = .рф)
    r"@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$"
)
# what people type around phone digits; anything else (letters, '#', ext.) is refused
_PHONE_NOISE_RE = re.compile(r"[\s()\-.\u00a0]")
_REPR_MAX = 40
#: what alias keys ignore (compiled once: alias_key runs for every code of every line)
_ALIAS_NOISE_RE = re.compile(r"[\s\-_]+")
#: no amount, quantity, code or line number has more integer digits than this
_MAX_DIGITS = 18


#: what the admin does about most rejections (the planner puts the shop id in)
NEXT_FIX_ROW = "fix the row in the shop, then run `kkt-worker resend --id {id}`"


class InvalidPayment(WorkerError):
    """The shop's row cannot become a correct receipt; ``field`` says where, ``message`` why (the value,
    masked when personal, and the rule), ``next_step`` what the admin does (default: fix the row and
    resend; ``{id}`` is filled in with the shop id).

    The worker records the payment as rejected with :meth:`describe` and never retries it by itself.
    """

    def __init__(self, field: str, message: str, next_step: str = NEXT_FIX_ROW) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.next_step = next_step

    def describe(self, source_id: Any) -> str:
        """The full message for the ledger: field, value, rule and the next step."""
        step = self.next_step.replace("{id}", str(source_id))
        return f"{self.field}: {self.message}. Next: {step}"


def kind_of(value: Any) -> str:
    """A value's type in an admin's words (never Python's: no "NoneType")."""
    if value is None:
        return "empty (NULL)"
    for cls, words in ((bool, "a yes/no value"), (int, "a whole number"), (Decimal, "a decimal number"),
                       (float, "a binary float"), (str, "text"), (bytes, "raw bytes"),
                       (dt.datetime, "a date and time"), (dt.date, "a date without time")):
        if isinstance(value, cls):
            return words
    return "a value of an unsupported type"


def short_repr(value: Any) -> str:
    """A raw value for a message, cut so that a 10 kB garbage name does not flood the ledger."""
    if value is None:
        return "empty (NULL)"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    try:
        r = repr(value)
    except ValueError:  # an int of more than 4300 digits refuses repr()
        return f"<{type(value).__name__}>"
    return r if len(r) <= _REPR_MAX else r[: _REPR_MAX - 3] + "..."


# ---------------------------------------------------------------- numbers


def _decimal(value: Any, field: str, what: str) -> Decimal:
    if type(value) is Decimal and value.is_finite() and value.adjusted() <= _MAX_DIGITS:
        return value   # what the shop source gives: the checks below would return it unchanged
    if isinstance(value, float):
        raise InvalidPayment(field, f"{what} is a float ({value!r}); floats lose kopecks, expected a Decimal")
    if isinstance(value, bool) or value is None:
        raise InvalidPayment(field, f"{what} is {kind_of(value)}, expected a decimal number")
    if isinstance(value, bytes):
        value = text(value, field, max_len=64)
    if isinstance(value, str):
        value = value.strip()
    if not isinstance(value, (Decimal, int, str)):
        raise InvalidPayment(field, f"{what} must be a decimal number, got {kind_of(value)}")
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError):
        raise InvalidPayment(field, f"{what} is not a decimal number: {short_repr(value)}") from None
    if not d.is_finite():
        raise InvalidPayment(field, f"{what} is not a finite number: {short_repr(value)}")
    if d.adjusted() > _MAX_DIGITS:
        # refuse before any quantize(): 1E+999999 would overflow the context, not just the limit
        raise InvalidPayment(field, f"{what} {short_repr(value)} is absurdly large")
    return d


def parse_money(
    value: Any, field: str, *, positive: bool = False, max_value: Decimal | None = MAX_MONEY
) -> Decimal:
    """A rubles amount with at most 2 decimals, >= 0 (> 0 if *positive*), <= *max_value*."""
    d = _decimal(value, field, "amount")
    q = d.quantize(KOPECK, rounding=ROUND_HALF_UP)
    if d != q:
        raise InvalidPayment(field, f"{d} has more than 2 decimal places (kopecks)")
    if positive and d <= 0:
        raise InvalidPayment(field, f"must be greater than 0, got {d}")
    if d < 0:
        raise InvalidPayment(field, f"must not be negative, got {d}")
    if max_value is not None and d > max_value:
        raise InvalidPayment(field, f"{d} exceeds the register limit {max_value}")
    return q   # d has at most 2 places: d.quantize(KOPECK) with any rounding is q


def parse_quantity(value: Any, field: str) -> Decimal:
    """A quantity > 0 with at most 3 decimals and <= 99 999.999."""
    d = _decimal(value, field, "quantity")
    if d <= 0:
        raise InvalidPayment(field, f"must be greater than 0, got {d}")
    if d > MAX_QUANTITY:
        raise InvalidPayment(field, f"{d} exceeds the register limit {MAX_QUANTITY}")
    q = d.quantize(QTY_STEP, rounding=ROUND_HALF_UP)
    if d != q:
        raise InvalidPayment(field, f"{d} has more than 3 decimal places")
    return q   # d has at most 3 places: d.quantize(QTY_STEP) with any rounding is q


#: the largest line number (the shop's column is an INT)
MAX_LINE_NO = 2**31 - 1


def parse_line_no(value: Any, field: str) -> int:
    """A positive integer line number (DB INT → int; an integral Decimal or digit string is fine)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() <= _MAX_DIGITS
        and value == value.to_integral_value()
    ):
        n = int(value)
    elif (
        isinstance(value, str)
        and value.strip().isascii()
        and value.strip().isdigit()
        and len(value.strip()) <= _MAX_DIGITS
    ):
        n = int(value.strip())
    else:
        raise InvalidPayment(field, f"must be a positive integer, got {short_repr(value)}")
    if not 1 <= n <= MAX_LINE_NO:
        # bounded before any formatting: a huge int cannot even be printed (Python's 4300-digit limit)
        raise InvalidPayment(field, f"must be a positive integer up to {MAX_LINE_NO}, got "
                                    f"{n if -MAX_LINE_NO <= n <= MAX_LINE_NO else 'a number too large'}")
    return n


def round_kop(value: Decimal) -> Decimal:
    """Half-up rounding to kopecks: the one rounding 54-FZ providers apply to price × quantity."""
    return value.quantize(KOPECK, rounding=ROUND_HALF_UP)


def floor_kop(value: Decimal) -> Decimal:
    """Rounding down to kopecks."""
    return value.quantize(KOPECK, rounding=ROUND_FLOOR)


# ---------------------------------------------------------------- text


def text(value: Any, field: str, *, max_len: int = ITEM_NAME_MAX_LEN, required: bool = True) -> str:
    """Stripped printable text of 1..*max_len* characters (bytes must be valid UTF-8)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPayment(field, f"is not valid UTF-8 (byte {exc.start})") from None
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidPayment(field, f"must be text, got {kind_of(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # lone surrogates: what a driver decoding with surrogateescape leaves behind
        raise InvalidPayment(field, f"is not valid Unicode text (position {exc.start})") from None
    s = value.strip()
    # isprintable() is False for every Cc/Zl/Zp character (and some harmless ones): the loop only runs then
    for pos, ch in enumerate(() if s.isprintable() else s):
        # Cc = control (incl. tab/newline), Zl/Zp = line/paragraph separators: they break receipts and logs
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise InvalidPayment(field, f"contains a control character U+{ord(ch):04X} at position {pos}")
    if not s and required:
        raise InvalidPayment(field, "must not be empty")
    if len(s) > max_len:
        raise InvalidPayment(field, f"is {len(s)} characters long, the limit is {max_len}")
    return s


# ---------------------------------------------------------------- contacts


def mask_contact(s: Any) -> str:
    """A customer e-mail or phone safe for logs and messages: ``i***@example.com``, ``+7******4567``."""
    if s is None:
        return "None"
    if isinstance(s, bytes):
        s = s.decode("utf-8", errors="replace")
    if not isinstance(s, str):
        return f"<{kind_of(s)}>"
    s = s.strip()
    if "@" in s:
        local, _, domain = s.rpartition("@")
        return f"{local[:1]}***@{domain[:40]}"
    digits = re.sub(r"\D", "", s)
    if len(digits) >= 7:
        head = "+" + digits[:1] if s.startswith("+") else digits[:1]
        return head + "*" * (len(digits) - 5) + digits[-4:]
    return (s[:1] + "***") if s else ""


def parse_email(value: Any, field: str) -> str:
    """A customer e-mail for requisite 1008 (≤ 64 characters, ASCII as registers and OFDs take it).

    An internationalised domain (``пример.рф``) is converted to its A-labels (``xn--e1afmkfd.xn--p1ai``),
    the form mail servers use; a domain already in A-labels is kept. The local part must be ASCII
    (SMTPUTF8 mailboxes are not deliverable through the OFDs we know of).
    """
    s = text(value, field, max_len=10_000)
    local, at, domain = s.rpartition("@")
    if at and domain and not domain.isascii():
        try:
            domain = domain.rstrip(".").encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidPayment(field, f"{mask_contact(s)}: the domain is not a valid internationalised "
                                        "domain name") from None
        s = f"{local}@{domain}"
    if not local.isascii():
        raise InvalidPayment(field, f"{mask_contact(s)}: the part before '@' must be ASCII "
                                    "(registers and OFDs refuse other mailboxes)")
    if len(s) > CONTACT_MAX_LEN:
        raise InvalidPayment(field, f"{mask_contact(s)} is longer than {CONTACT_MAX_LEN} characters")
    if not _EMAIL_RE.match(s) or ".." in s:
        raise InvalidPayment(field, f"{mask_contact(s)} is not a valid e-mail address")
    return s


def parse_phone(value: Any, field: str) -> str:
    """A phone normalised to E.164: ``8 (912) 345-67-89`` → ``+79123456789``."""
    s = text(value, field, max_len=10_000)
    compact = _PHONE_NOISE_RE.sub("", s)
    plus = compact.startswith("+")
    digits = compact[1:] if plus else compact
    if not digits.isascii() or not digits.isdigit():
        raise InvalidPayment(field, f"{mask_contact(s)} is not a phone number")
    if plus and digits.startswith("7"):
        ok = len(digits) == 11
    elif plus:
        ok = 8 <= len(digits) <= 15  # a foreign number, E.164
    elif len(digits) == 11 and digits[0] in "78":
        digits, ok = "7" + digits[1:], True  # Russian trunk prefix 8 → country code 7
    elif len(digits) == 10 and digits[0] == "9":
        digits, ok = "7" + digits, True  # a bare mobile number
    else:
        ok = False
    if not ok:
        raise InvalidPayment(
            field, f"{mask_contact(s)} is not a Russian (+7XXXXXXXXXX) or E.164 phone number"
        )
    return "+" + digits


# ---------------------------------------------------------------- enums and aliases


def alias_key(value: Any) -> str:
    """How alias keys are compared: lower case, without spaces, '-' and '_'."""
    return _ALIAS_NOISE_RE.sub("", str(value)).lower()


def _enum_aliases(enum_cls: type[Enum], extra: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for member in enum_cls:
        out[str(member.value)] = member
        out[member.name.lower()] = member
    out.update({k: enum_cls[v] if isinstance(v, str) else v for k, v in extra.items()})
    return out


def _vat_defaults() -> dict[str, Vat]:
    out: dict[str, Vat] = {}
    for v in Vat:
        out[v.value] = v
    for pct, ordinary, calculated in (
        (20, Vat.VAT20, Vat.VAT120),
        (10, Vat.VAT10, Vat.VAT110),
        (5, Vat.VAT5, Vat.VAT105),
        (7, Vat.VAT7, Vat.VAT107),
        (22, Vat.VAT22, Vat.VAT122),
    ):
        out[str(pct)] = out[f"{pct}%"] = out[f"nds{pct}"] = ordinary
        base = 100 + pct
        out[f"{pct}/{base}"] = out[str(base)] = out[f"{pct}/{base}%"] = calculated
        # the shop codes documented in sql/schema.sql and docs/receipts.md (SHOP_VAT_CODES)
        out[f"vat{pct}_{base}"] = out[f"vat{pct}/{base}"] = calculated
    for k in ("0", "0%", "vat0", "nds0"):
        out[k] = Vat.VAT0
    for k in ("none", "no", "novat", "withoutvat", "без ндс", "безндс", "null"):
        out[k] = Vat.NONE
    return out


DEFAULT_VAT_ALIASES: Mapping[str, Vat] = _vat_defaults()
#: the VAT codes a shop writes in ``payment_items.vat``, as documented (sql/schema.sql, docs/receipts.md);
#: a test checks that both documents list exactly these and that each is in DEFAULT_VAT_ALIASES
SHOP_VAT_CODES: Mapping[str, Vat] = {
    "vat22": Vat.VAT22, "vat22_122": Vat.VAT122, "vat10": Vat.VAT10, "vat10_110": Vat.VAT110,
    "vat5": Vat.VAT5, "vat5_105": Vat.VAT105, "vat7": Vat.VAT7, "vat7_107": Vat.VAT107,
    "vat0": Vat.VAT0, "none": Vat.NONE, "vat20": Vat.VAT20, "vat20_120": Vat.VAT120,
}
DEFAULT_METHOD_ALIASES: Mapping[str, PaymentMethod] = _enum_aliases(
    PaymentMethod,
    {
        # ATOL Online v4 strings
        "prepayment": "PARTIAL_PREPAYMENT",
        "partial_payment": "PARTIAL_PAYMENT_AND_CREDIT",
        # the names of the FFD table (1214 = 1..7)
        "предоплата 100%": "FULL_PREPAYMENT",
        "предоплата": "PARTIAL_PREPAYMENT",
        "аванс": "ADVANCE",
        "полный расчёт": "FULL_PAYMENT",
        "полный расчет": "FULL_PAYMENT",
        "частичный расчёт и кредит": "PARTIAL_PAYMENT_AND_CREDIT",
        "частичный расчет и кредит": "PARTIAL_PAYMENT_AND_CREDIT",
        "передача в кредит": "CREDIT",
        "оплата кредита": "CREDIT_PAYMENT",
    },
)
DEFAULT_SUBJECT_ALIASES: Mapping[str, PaymentSubject] = _enum_aliases(
    PaymentSubject,
    {
        "goods": "COMMODITY",
        "товар": "COMMODITY",
        "услуга": "SERVICE",
        "work": "JOB",
    },
)
DEFAULT_MEASURE_ALIASES: Mapping[str, MeasureUnit] = _enum_aliases(
    MeasureUnit,
    {
        "pcs": "PIECE",
        "шт": "PIECE",
        "kg": "KILOGRAM",
        "кг": "KILOGRAM",
        "g": "GRAM",
        "г": "GRAM",
        "l": "LITER",
        "л": "LITER",
        "m": "METER",
        "м": "METER",
        "ml": "MILLILITER",
        "мл": "MILLILITER",
    },
)

E = TypeVar("E")


def normalise_aliases(aliases: Mapping[Any, Any], enum_cls: type[E]) -> dict[str, E]:
    """Alias map with normalised keys and enum values (a value may be the member, its value or name)."""
    out: dict[str, E] = {}
    for key, val in aliases.items():
        if not isinstance(val, enum_cls):
            try:
                val = enum_cls(val)  # type: ignore[call-arg]
            except ValueError:
                try:
                    val = enum_cls[str(val).upper()]  # type: ignore[index]
                except KeyError:
                    raise ValueError(f"alias {key!r}: {val!r} is not a {enum_cls.__name__}") from None
        out[alias_key(key)] = val  # type: ignore[assignment]
    return out


def parse_alias(
    value: Any, field: str, aliases: Mapping[str, E], what: str, *, unknown: str | None = None
) -> E:
    """Look a shop code up in an alias map (keys already normalised by :func:`normalise_aliases`).

    *unknown* replaces the "is not a known …" wording (the VAT rule wants the date in it).
    """
    raw = value
    if isinstance(value, float):
        raise InvalidPayment(field, f"{what} is a float ({value!r}); expected a code or a name")
    if isinstance(value, bytes):
        value = text(value, field, max_len=64)
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() <= _MAX_DIGITS
        and value == value.to_integral_value()
    ):
        value = int(value)  # DECIMAL(4,2) columns give Decimal('22.00')
    if isinstance(value, int) and abs(value) >= 10**_MAX_DIGITS:
        value = None  # no code is that long; str() of a huge int would even raise
    found = None
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, bool) and isinstance(value, (str, int, Decimal)):
        found = aliases.get(alias_key(value))
    if found is None:
        raise InvalidPayment(field, f"{short_repr(raw)} {unknown or f'is an unknown {what} code'}")
    return found


# ---------------------------------------------------------------- dates and VAT rules


def local_time(value: Any, field: str, zone: dt.tzinfo | None = None) -> dt.datetime:
    """*value* as an aware time in the local *zone* of the place of settlement.

    Rows read by :mod:`worker.shop` are aware (``source.timezone``); a naive value (an old snapshot,
    a hand-built row) is taken as local time in *zone*.
    """
    zone = zone or SHOP_TZ
    if not isinstance(value, dt.datetime):
        raise InvalidPayment(field, f"must be a date and time, got {kind_of(value)} {short_repr(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=zone)
    return value.astimezone(zone)


def parse_paid_at(value: Any, field: str, zone: dt.tzinfo | None = None) -> dt.date:
    """The local settlement date of a datetime in *zone* (default Europe/Moscow)."""
    return local_time(value, field, zone).date()


#: rates each tax system (1055) may put in 1199. ОСН/ЕСХН pay VAT at the general rates (5 %/7 % are
#: УСН-only, ЕД-7-20/1038@); УСН may use 5/7 % or the general rates or none; ПСН pays no VAT.
_TAX_SYSTEM_RATES: Mapping[TaxSystem, frozenset[Vat]] = {
    TaxSystem.OSN: frozenset({Vat.VAT22, Vat.VAT122, Vat.VAT20, Vat.VAT120, Vat.VAT10, Vat.VAT110, Vat.VAT0,
                              Vat.NONE}),
    # GUESS: ЕСХН payers are VAT payers since 2019 unless exempt; treated like ОСН
    TaxSystem.ESHN: frozenset({Vat.VAT22, Vat.VAT122, Vat.VAT20, Vat.VAT120, Vat.VAT10, Vat.VAT110, Vat.VAT0,
                               Vat.NONE}),
    TaxSystem.USN_INCOME: frozenset(Vat),
    TaxSystem.USN_INCOME_OUTCOME: frozenset(Vat),
    # GUESS: patent activities are outside VAT (fz54-receipts.md §3.2: "ПСН sends без НДС")
    TaxSystem.PATENT: frozenset({Vat.NONE}),
}
_TAX_SYSTEM_NAME = {TaxSystem.OSN: "ОСН (osn)", TaxSystem.ESHN: "ЕСХН (eshn)", TaxSystem.USN_INCOME: "УСН доход",
                    TaxSystem.USN_INCOME_OUTCOME: "УСН доход−расход", TaxSystem.PATENT: "ПСН (patent)"}


def check_vat_for_tax_system(vat: Vat, raw: Any, tax_system: TaxSystem, field: str) -> None:
    """A rate impossible under the configured tax system (1055) is refused, naming both."""
    allowed = _TAX_SYSTEM_RATES[tax_system]
    if vat not in allowed:
        names = ", ".join(sorted(v.value for v in allowed))
        why = (" (5 % and 7 % exist only for УСН payers, ЕД-7-20/1038@)"
               if vat in (Vat.VAT5, Vat.VAT7, Vat.VAT105, Vat.VAT107) else "")
        raise InvalidPayment(
            field,
            f"{short_repr(raw)} ({vat.value}) is not allowed under the tax system {_TAX_SYSTEM_NAME[tax_system]} "
            f"set in receipts.tax_system{why}; allowed: {names}",
            NEXT_FIX_ROW + " (or correct receipts.tax_system if the shop changed its tax system)")


_VAT20_FAMILY = {Vat.VAT20: Vat.VAT22, Vat.VAT120: Vat.VAT122}
_VAT22_FAMILY = {v: k for k, v in _VAT20_FAMILY.items()}


_PREPAYMENT_METHODS = (PaymentMethod.FULL_PREPAYMENT, PaymentMethod.PARTIAL_PREPAYMENT, PaymentMethod.ADVANCE)
#: ordinary rate → its calculated twin (1214 = 1..3 needs the latter, §3.2)
_CALCULATED = {
    Vat.VAT20: Vat.VAT120,
    Vat.VAT22: Vat.VAT122,
    Vat.VAT10: Vat.VAT110,
    Vat.VAT5: Vat.VAT105,
    Vat.VAT7: Vat.VAT107,
}
_ORDINARY = {v: k for k, v in _CALCULATED.items()}


def default_vat_for(default: Vat, on: dt.date, method: PaymentMethod = PaymentMethod.FULL_PAYMENT) -> Vat:
    """The configured general rate as it applies to a line without a rate of its own.

    * vat22 before 2026 means vat20, and vat20 from 2026 means vat22: a refund in 2026 of a 2025
      line without an explicit rate was issued at 20 %, while the configuration now says 22 %;
    * a prepayment line (1214 = 1..3) takes the calculated twin (22 % → 22/122), a full payment the
      ordinary one.
    Explicit rates in the row are never remapped; they are checked by :func:`check_vat`.
    """
    vat = _VAT22_FAMILY.get(default, default) if on < VAT22_FROM else _VAT20_FAMILY.get(default, default)
    if method in _PREPAYMENT_METHODS:
        return _CALCULATED.get(vat, vat)
    return _ORDINARY.get(vat, vat)


def check_vat(vat: Vat, raw: Any, on: dt.date, method: PaymentMethod, field: str) -> None:
    """The rate must exist on the operation date and fit the payment method (1214)."""
    if on < VAT22_FROM and vat in (Vat.VAT22, Vat.VAT122):
        raise InvalidPayment(
            field,
            f"{short_repr(raw)} is not a valid rate for a sale on {on} (22 % applies from {VAT22_FROM})",
        )
    if on >= VAT22_FROM and vat in (Vat.VAT20, Vat.VAT120):
        raise InvalidPayment(
            field, f"{short_repr(raw)} is not a valid rate for a sale on {on} (20 % ended on 2025-12-31)"
        )
    prepayment = method in _PREPAYMENT_METHODS
    if prepayment and vat not in (Vat.VAT0, Vat.NONE) and not vat.is_calculated:
        raise InvalidPayment(
            field,
            f"{short_repr(raw)} is an ordinary rate; payment method {int(method)} ({method.name.lower()}) "
            "is a prepayment and needs a calculated rate such as vat122",
        )
    if not prepayment and vat.is_calculated:
        raise InvalidPayment(
            field,
            f"{short_repr(raw)} is a calculated rate; payment method {int(method)} ({method.name.lower()}) "
            "needs an ordinary rate such as vat22",
        )


def calculated_rate(vat: Vat) -> Vat:
    """The calculated twin of an ordinary rate (22 % → 22/122); 0 %, без НДС and calculated rates unchanged."""
    return _CALCULATED.get(vat, vat)


def ordinary_rate(vat: Vat) -> Vat:
    """The ordinary twin of a calculated rate (22/122 → 22 %); other rates unchanged."""
    return _ORDINARY.get(vat, vat)


def rate_on(vat: Vat, on: dt.date) -> Vat:
    """*vat* as the general rate stood on *on*: 20 % ↔ 22 % (and 20/120 ↔ 22/122) across 2026-01-01.

    Used for the settlement of a prepayment (§3.3: prepaid in 2025 at 20/120, shipped in 2026 at 22 %).
    """
    return _VAT22_FAMILY.get(vat, vat) if on < VAT22_FROM else _VAT20_FAMILY.get(vat, vat)
