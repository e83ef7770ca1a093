"""The shop's rows as the worker reads them, before any validation.

Values keep the types the database returned (``Decimal`` for DECIMAL columns, ``str`` for text,
``datetime`` for times, or ``None``) — nothing is coerced here, so that validation in
:mod:`worker.receipts.sale` can name the field that is wrong. Two values are normalised here, once,
because everything downstream compares them: ``kind`` (lower case, no spaces) and ``line_no`` (an int
whatever the column type). ``paid_at`` is made time-zone aware by the source (``source.timezone``). ``to_json``/``from_json`` give the exact
snapshot the ledger stores (Decimals as strings, never float).
"""
from __future__ import annotations

import base64
import datetime as dt
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from kkt_drivers import json_text

KIND_SALE = "sale"
KIND_REFUND = "refund"
#: the zone of the shop's naive DATETIME values when ``source.timezone`` says nothing (most Russian shops)
DEFAULT_SOURCE_TIMEZONE = "Europe/Moscow"


def normalise_kind(value: Any) -> Any:
    """``payments.kind`` compared once, everywhere: 'REFUND', ' Refund ' → 'refund'. Non-text stays as is
    (validation names it)."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value.strip().lower() if isinstance(value, str) else value


def normalise_line_no(value: Any) -> Any:
    """The shop's line number as one type whatever the column type: INT, DECIMAL, '1', ' 01 ' → 1.

    Refunded quantities are kept per line number; a text column ('1') and an INT (1) must be the
    same line, or a line could be refunded twice. A value that is not a whole number is left as is
    so that validation names the field.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and value.adjusted() < 19:
            return int(value)
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return value
    if isinstance(value, str):
        s = value.strip()
        if s.isascii() and s.isdigit() and len(s) <= 18:
            return int(s)
    return value


@dataclass(frozen=True)
class ShopItem:
    """One row of ``payment_items``."""

    line_no: Any
    name: Any
    price: Any
    quantity: Any
    amount: Any
    vat: Any = None
    payment_method: Any = None
    payment_subject: Any = None
    measure_unit: Any = None
    #: marking codes of the line's units, in unit order (raw bytes with GS, or base64 text);
    #: from ``payment_item_codes`` or a mapped column (docs/marking.md)
    marking_codes: Any = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "line_no", normalise_line_no(self.line_no))


@dataclass(frozen=True)
class ShopPayment:
    """One row of ``payments`` with its items. ``refund_of`` is the source id of the refunded sale;
    ``discount`` an order-level discount spread over the lines (None when the shop has none)."""

    id: int
    kind: Any
    amount: Any
    paid_at: Any
    customer_email: Any = None
    customer_phone: Any = None
    order_ref: Any = None
    refund_of: Any = None
    discount: Any = None
    route: Any = None     # the routing column's value (register group), None when not mapped
    items: tuple[ShopItem, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # normalised where rows are read, so every comparison (build, planner, ledger) sees one value
        object.__setattr__(self, "kind", normalise_kind(self.kind))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe snapshot: Decimal → str, datetime → ISO string.

        A direct walk over the fields (``dataclasses.asdict`` deep-copies every value first: it was
        the costliest step of ingest); the result is the same dict, key for key and in the same order.
        """
        items = self.items
        if not isinstance(items, (tuple, list)) or not all(isinstance(it, ShopItem) for it in items):
            return self._to_json_generic()   # a hand-made row (tests): the general path, same output
        out = {n: v if type(v) in _AS_IS else _jsonable(v) for n, v in zip(_PAYMENT_FIELDS, _payment_values(self))}
        out["items"] = [_item_json(it) for it in items]   # (replacing a value keeps the key's place)
        return out

    def _to_json_generic(self) -> dict[str, Any]:
        data = asdict(self)
        for it in data.get("items", ()):  # codes are bytes: kept exact as base64, never decoded as text
            it["marking_codes"] = [_code_json(c) for c in it.get("marking_codes") or ()]
        return _jsonable(data)

    def snapshot(self) -> str:
        """:meth:`to_json` as the JSON text the ledger stores (non-ASCII kept as is)."""
        return json_text.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ShopPayment":
        """Inverse of :meth:`to_json` (amounts come back as Decimal, times as datetime)."""
        d = _revive(dict(data))
        d["items"] = tuple(ShopItem(**{**_revive(dict(i)), "marking_codes": tuple(
            _code_back(c) for c in i.get("marking_codes") or ())}) for i in data.get("items", ()))
        return cls(**d)


#: the snapshot's keys in field order (the order asdict gave them), and one call reading them all
_PAYMENT_FIELDS = tuple(f.name for f in fields(ShopPayment))
_ITEM_FIELDS = tuple(f.name for f in fields(ShopItem))
_payment_values = attrgetter(*_PAYMENT_FIELDS)
_item_values = attrgetter(*_ITEM_FIELDS)


def _item_json(item: ShopItem) -> dict[str, Any]:
    """One line of the snapshot; codes are bytes: kept exact as base64, never decoded as text."""
    out = {n: v if type(v) in _AS_IS else {_DEC: str(v)} if type(v) is Decimal else _jsonable(v)
           for n, v in zip(_ITEM_FIELDS, _item_values(item))}   # (_jsonable inlined for a line's usual values)
    out["marking_codes"] = [_jsonable(_code_json(c)) for c in item.marking_codes or ()]
    return out


_B64 = "__base64__"


def _code_json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_B64: base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _code_back(value: Any) -> Any:
    if isinstance(value, dict) and _B64 in value:
        return base64.b64decode(value[_B64])
    return value


_DEC = "__decimal__"
_DT = "__datetime__"


#: values that are their own JSON (exact types: a subclass takes the checks below, as before)
_AS_IS = frozenset({str, int, bool, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Decimal):
        return {_DEC: str(value)}
    if isinstance(value, dt.datetime):
        return {_DT: value.isoformat()}   # an aware time keeps its offset: stored with its zone
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _revive(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and _DEC in v:
            out[k] = Decimal(v[_DEC])
        elif isinstance(v, dict) and _DT in v:
            out[k] = dt.datetime.fromisoformat(v[_DT])
        else:
            out[k] = v
    return out
