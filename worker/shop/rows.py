"""The shop's rows as the worker reads them, before any validation.

Values keep the types the database returned (``Decimal`` for DECIMAL columns, ``str`` for text,
``datetime`` for times, or ``None``) — nothing is coerced here, so that validation in
:mod:`worker.receipts.build` can name the field that is wrong. ``to_json``/``from_json`` give the exact
snapshot the ledger stores (Decimals as strings, never float).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

KIND_SALE = "sale"
KIND_REFUND = "refund"


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
    items: tuple[ShopItem, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe snapshot: Decimal → str, datetime → ISO string."""
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ShopPayment":
        """Inverse of :meth:`to_json` (amounts come back as Decimal, times as datetime)."""
        d = _revive(dict(data))
        d["items"] = tuple(ShopItem(**_revive(dict(i))) for i in data.get("items", ()))
        return cls(**d)


_DEC = "__decimal__"
_DT = "__datetime__"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {_DEC: str(value)}
    if isinstance(value, dt.datetime):
        return {_DT: value.isoformat()}
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
