"""Read-only access to the shop's paid payments: the :class:`ShopSource` interface and its factory.

URL grammar for :func:`open_source` (the scheme picks the backend, like ``serial_for_url``)::

    mysql+pymysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?charset=utf8mb4]   → MySQLSource
    sqlite:///RELATIVE/PATH.db   |   sqlite:////ABSOLUTE/PATH.db              → SQLiteSource

Anything else is rejected with :class:`SourceConfigError`. Prefer giving the password through the
worker's settings (credential file) rather than inside a URL that may be logged.

Every call is one short read that ends its transaction, so each poll sees everything committed
before it started (a snapshot held open across polls would hide late commits, reliability §1.2).
Rows come back as :class:`~worker.shop.rows.ShopPayment` *unvalidated*: money as ``Decimal`` (never
float), text as ``str`` — or ``bytes`` when it is not valid UTF-8, so that validation can reject the
payment naming the field instead of the poller crashing on one bad row.

Errors are translated at this boundary into :class:`SourceUnavailable` (retry later with backoff)
or :class:`SourceConfigError` (an operator must fix credentials, grants or the mapping; retrying
does not help). Messages never contain a password.
"""
from __future__ import annotations

import abc
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import SourceConfigError, SourceError, SourceUnavailable
from worker.shop.rows import DEFAULT_SOURCE_TIMEZONE, KIND_SALE, ShopItem, ShopPayment

# The error classes live in worker.errors (one exception root); re-exported here for callers.
__all__ = [
    "FETCH_BY_IDS_CHUNK", "ShopDelivery", "ShopSource", "SourceConfigError", "SourceError", "SourceMapping",
    "SourceUnavailable", "SqlShopSource", "assemble", "shop_zone",
]


def shop_zone(name: str | None) -> ZoneInfo:
    """The IANA zone the shop's naive DATETIME values are in (``source.timezone``)."""
    try:
        return ZoneInfo(name or DEFAULT_SOURCE_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SourceConfigError(f"source.timezone: {name!r} is not an IANA time zone such as Europe/Moscow or UTC") \
            from exc

FETCH_BY_IDS_CHUNK = 1000  # ids per IN (...) list: bounded statement size, still one round trip per 1000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # used with fullmatch: no trailing "\n" slips through


@dataclass(frozen=True)
class SourceMapping:
    """Table and column names in the shop's database (defaults: ``sql/schema.sql``).

    A field set to ``None`` means the shop has no such column: the value is read as NULL (for
    ``payment_kind``: every row is a sale). Every name must be a plain identifier
    (``^[A-Za-z_][A-Za-z0-9_]*$``) — they are quoted too, but never trusted into SQL unchecked.
    """

    payments_table: str = "payments"
    payment_id: str = "id"
    payment_kind: str | None = "kind"
    payment_order_ref: str | None = "order_ref"
    payment_refund_of: str | None = "refund_of"
    payment_amount: str = "amount"
    payment_customer_email: str | None = "customer_email"
    payment_customer_phone: str | None = "customer_phone"
    payment_paid_at: str = "paid_at"
    #: an order-level discount (coupon, bonus points) spread over the lines; most shops have none
    payment_discount: str | None = None
    #: the column whose value picks the register group (settings ``routing.column``; docs/pool.md)
    payment_route: str | None = None

    items_table: str = "payment_items"
    item_payment_id: str = "payment_id"
    item_line_no: str = "line_no"
    item_name: str = "name"
    item_price: str = "price"
    item_quantity: str = "quantity"
    item_amount: str = "amount"
    item_vat: str | None = "vat"
    item_payment_method: str | None = "payment_method"
    item_payment_subject: str | None = "payment_subject"
    item_measure_unit: str | None = "measure_unit"

    #: marked goods (docs/marking.md): a column holding the line's one code, and/or a child table
    #: with one row per unit (payment id, line number, unit number, code as raw bytes or base64)
    item_marking_code: str | None = None
    codes_table: str | None = None
    code_payment_id: str = "payment_id"
    code_line_no: str = "line_no"
    code_unit_no: str = "unit_no"
    code_value: str = "code"

    #: goods handed over (receipts.flow = prepayment): one row per delivered payment
    deliveries_table: str = "deliveries"
    delivery_id: str = "id"
    delivery_payment_id: str = "payment_id"
    delivery_delivered_at: str = "delivered_at"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            optional = f.type in ("str | None", str | None)
            if value is None and optional:
                continue
            if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
                raise SourceConfigError(
                    f"source mapping: {f.name}={value!r} is not a valid identifier "
                    f"(letters, digits and _, not starting with a digit)"
                )


# Logical names of the selected values, in ShopPayment / ShopItem terms, paired with the mapping field.
_PAYMENT_COLUMNS = (
    ("id", "payment_id"), ("kind", "payment_kind"), ("order_ref", "payment_order_ref"),
    ("refund_of", "payment_refund_of"), ("amount", "payment_amount"),
    ("customer_email", "payment_customer_email"), ("customer_phone", "payment_customer_phone"),
    ("paid_at", "payment_paid_at"), ("discount", "payment_discount"), ("route", "payment_route"),
)
_ITEM_COLUMNS = (
    ("payment_id", "item_payment_id"), ("line_no", "item_line_no"), ("name", "item_name"),
    ("price", "item_price"), ("quantity", "item_quantity"), ("amount", "item_amount"),
    ("vat", "item_vat"), ("payment_method", "item_payment_method"),
    ("payment_subject", "item_payment_subject"), ("measure_unit", "item_measure_unit"),
    ("marking_code", "item_marking_code"),
)
#: text columns are selected as raw bytes on the MySQL retry path (mysql.py); assemble() decodes them.
#: Money columns (amount, price, quantity, discount) are read as exact Decimals (see _money_value).
_TEXT = {"route", "kind", "order_ref", "customer_email", "customer_phone", "name", "vat",
         "payment_method", "payment_subject", "measure_unit"}


@dataclass(frozen=True)
class ShopDelivery:
    """One row of ``deliveries``: the goods of shop payment ``payment_id`` were handed over."""

    id: int
    payment_id: Any
    delivered_at: Any


class ShopSource(abc.ABC):
    """What the worker needs from the shop: read-only, by ascending id, fresh on every call."""

    @abc.abstractmethod
    def fetch_after(self, cursor: int, limit: int) -> list[ShopPayment]:
        """Payments with ``id > cursor``, ascending by id, at most ``limit``, with their items."""

    @abc.abstractmethod
    def fetch_by_ids(self, ids: Sequence[int]) -> list[ShopPayment]:
        """The payments among ``ids`` that exist now (ascending by id); for the gap recheck."""

    def fetch_deliveries_after(self, cursor: int, limit: int) -> list[ShopDelivery]:
        """Deliveries with ``id > cursor``, ascending by id, at most ``limit`` (prepayment flow)."""
        raise NotImplementedError(f"{type(self).__name__} does not read deliveries")

    def fetch_deliveries_by_ids(self, ids: Sequence[int]) -> list[ShopDelivery]:
        """The deliveries among ``ids`` that exist now (ascending by id); for the gap recheck."""
        raise NotImplementedError(f"{type(self).__name__} does not read deliveries")

    @abc.abstractmethod
    def max_id(self) -> int:
        """The highest payment id visible now, 0 for an empty table."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Check connectivity *and* that every mapped table/column is readable; raise otherwise."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The source is not used afterwards."""

    def __enter__(self) -> "ShopSource":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SqlShopSource(ShopSource):
    """The SQL shared by every SQLAlchemy-backed source; subclasses build the engine and map errors."""

    quote_char = '"'
    ids_chunk = FETCH_BY_IDS_CHUNK

    def __init__(self, engine: sa.Engine, mapping: SourceMapping, timezone: str | None = None) -> None:
        self._engine = engine
        self._mapping = mapping
        #: naive DATETIMEs read from the shop are in this zone (a shop storing UTC says "UTC")
        self.zone = shop_zone(timezone)
        self._sql = self._statements(raw_text=False)

    # -- subclass hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def _translate(self, exc: Exception) -> SourceError:
        """Turn a driver/SQLAlchemy error into SourceUnavailable / SourceConfigError."""

    def _select_text(self, column_sql: str, raw_text: bool) -> str:
        """SQL reading a text column; ``raw_text`` asks for its bytes (MySQL's bad-bytes fallback)."""
        return column_sql

    # -- public interface ----------------------------------------------------------------------
    def fetch_after(self, cursor: int, limit: int) -> list[ShopPayment]:
        if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0:
            raise ValueError(f"cursor must be an int >= 0, got {cursor!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        return self._read("after", {"cursor": cursor, "limit": limit})

    def fetch_by_ids(self, ids: Sequence[int]) -> list[ShopPayment]:
        wanted = sorted({int(i) for i in ids})
        out: list[ShopPayment] = []
        for start in range(0, len(wanted), self.ids_chunk):
            out.extend(self._read("by_ids", {"ids": wanted[start:start + self.ids_chunk]}))
        return out

    def fetch_deliveries_after(self, cursor: int, limit: int) -> list[ShopDelivery]:
        if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0:
            raise ValueError(f"cursor must be an int >= 0, got {cursor!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        return self._read_deliveries(self._delivery_sql()[0], {"cursor": cursor, "limit": limit})

    def fetch_deliveries_by_ids(self, ids: Sequence[int]) -> list[ShopDelivery]:
        wanted = sorted({int(i) for i in ids})
        out: list[ShopDelivery] = []
        for start in range(0, len(wanted), self.ids_chunk):
            out.extend(self._read_deliveries(self._delivery_sql()[1], {"ids": wanted[start:start + self.ids_chunk]}))
        return out

    def _delivery_sql(self) -> tuple[sa.TextClause, sa.TextClause]:
        """(after, by_ids) statements over the deliveries table, from the validated mapping."""
        m = self._mapping
        did = f"d.{self._q(m.delivery_id)}"
        select_d = (f"SELECT {did} AS {self._q('id')}, d.{self._q(m.delivery_payment_id)} AS {self._q('payment_id')}, "
                    f"d.{self._q(m.delivery_delivered_at)} AS {self._q('delivered_at')} "
                    f"FROM {self._q(m.deliveries_table)} AS d")
        return (sa.text(f"{select_d} WHERE {did} > :cursor ORDER BY {did} LIMIT :limit"),
                sa.text(f"{select_d} WHERE {did} IN :ids ORDER BY {did}").bindparams(
                    sa.bindparam("ids", expanding=True)))

    def _read_deliveries(self, stmt: sa.TextClause, params: dict[str, Any]) -> list[ShopDelivery]:
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(stmt, params).mappings().all()
        except sa.exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc
        return [ShopDelivery(id=int(r["id"]), payment_id=r["payment_id"],
                             delivered_at=_to_datetime(r["delivered_at"], self.zone)) for r in rows]

    def max_id(self) -> int:
        try:
            with self._engine.connect() as conn:
                value = conn.execute(self._sql.max_id).scalar()
        except sa.exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc
        return int(value or 0)

    def ping(self) -> None:
        # LIMIT 0 still makes the server check every table and column privilege, so a wrong
        # mapping or a missing grant shows up at startup instead of at the first payment.
        try:
            with self._engine.connect() as conn:
                conn.execute(self._sql.after, {"cursor": 0, "limit": 0}).all()
                conn.execute(self._sql.items, {"ids": [0]}).all()
                if self._sql.codes is not None:
                    conn.execute(self._sql.codes, {"ids": [0]}).all()
        except sa.exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc

    def close(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engine.url.render_as_string(hide_password=True)!r})"

    # -- internals -----------------------------------------------------------------------------
    def _q(self, name: str) -> str:
        return f"{self.quote_char}{name}{self.quote_char}"

    def _columns(self, alias: str, pairs: tuple[tuple[str, str], ...], raw_text: bool) -> str:
        parts = []
        for logical, attr in pairs:
            column = getattr(self._mapping, attr)
            if column is None:
                expr = "NULL"
            elif logical in _TEXT:
                expr = self._select_text(f"{alias}.{self._q(column)}", raw_text)
            else:
                expr = f"{alias}.{self._q(column)}"
            parts.append(f"{expr} AS {self._q(logical)}")
        return ", ".join(parts)

    def _statements(self, raw_text: bool) -> "_Statements":
        """Every statement, built once from the validated mapping (explicit columns, never ``*``)."""
        m = self._mapping
        pid, iid = f"p.{self._q(m.payment_id)}", f"i.{self._q(m.item_payment_id)}"
        select_p = (f"SELECT {self._columns('p', _PAYMENT_COLUMNS, raw_text)} "
                    f"FROM {self._q(m.payments_table)} AS p")
        return _Statements(
            after=sa.text(f"{select_p} WHERE {pid} > :cursor ORDER BY {pid} LIMIT :limit"),
            by_ids=sa.text(f"{select_p} WHERE {pid} IN :ids ORDER BY {pid}").bindparams(
                sa.bindparam("ids", expanding=True)),
            items=sa.text(
                f"SELECT {self._columns('i', _ITEM_COLUMNS, raw_text)} FROM {self._q(m.items_table)} AS i "
                f"WHERE {iid} IN :ids ORDER BY {iid}, i.{self._q(m.item_line_no)}"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            max_id=sa.text(f"SELECT MAX({pid}) FROM {self._q(m.payments_table)} AS p"),
            codes=None if m.codes_table is None else sa.text(
                f"SELECT c.{self._q(m.code_payment_id)} AS {self._q('payment_id')}, "
                f"c.{self._q(m.code_line_no)} AS {self._q('line_no')}, "
                f"c.{self._q(m.code_value)} AS {self._q('code')} FROM {self._q(m.codes_table)} AS c "
                f"WHERE c.{self._q(m.code_payment_id)} IN :ids "
                f"ORDER BY c.{self._q(m.code_payment_id)}, c.{self._q(m.code_line_no)}, c.{self._q(m.code_unit_no)}"
            ).bindparams(sa.bindparam("ids", expanding=True)),
        )

    def _read(self, which: str, params: dict[str, Any], sql: "_Statements | None" = None) -> list[ShopPayment]:
        sql = sql or self._sql
        try:
            # One connection, one transaction, ended on exit: payments and their items come from
            # the same short read and nothing is kept open until the next poll.
            with self._engine.connect() as conn:
                try:
                    rows = conn.execute(getattr(sql, which), params).mappings().all()
                    items = (conn.execute(sql.items, {"ids": [r["id"] for r in rows]}).mappings().all()
                             if rows else [])
                    codes = (conn.execute(sql.codes, {"ids": [r["id"] for r in rows]}).mappings().all()
                             if rows and sql.codes is not None else [])
                except UnicodeDecodeError:
                    conn.invalidate()  # the driver stopped mid-result: this connection is out of sync
                    raise
        except sa.exc.SQLAlchemyError as exc:
            raise self._translate(exc) from exc
        return assemble(rows, items, self._mapping, self.zone, codes)


@dataclass(frozen=True)
class _Statements:
    after: sa.TextClause
    by_ids: sa.TextClause
    items: sa.TextClause
    max_id: sa.TextClause
    codes: sa.TextClause | None = None


def assemble(rows: Sequence[Any], items: Sequence[Any], mapping: SourceMapping,
             zone: dt.tzinfo | None = None, codes: Sequence[Any] = ()) -> list[ShopPayment]:
    """Build ShopPayments from payment rows and item rows (mappings keyed by logical names).

    Naive times get *zone* (default ``Europe/Moscow``); ``kind`` and ``line_no`` are normalised by
    :class:`ShopPayment` / :class:`ShopItem` themselves.
    """
    zone = zone or shop_zone(None)
    codes_by_line: dict[tuple[int, Any], list[Any]] = {}
    for c in codes:  # marking codes, ordered by payment, line, unit in SQL
        codes_by_line.setdefault((int(c["payment_id"]), c["line_no"]), []).append(_code_value(c["code"]))
    by_payment: dict[int, list[ShopItem]] = {}
    # each column's normalisation spelled out (not a loop over names): this runs for every line of every poll
    t = mapping.items_table
    for it in items:
        pid = int(it["payment_id"])
        own = it.get("marking_code")
        line_codes = ([] if own is None else [_code_value(own)]) + codes_by_line.get((pid, it["line_no"]), [])
        by_payment.setdefault(pid, []).append(ShopItem(
            line_no=it["line_no"],
            name=_text_value(it["name"]),
            price=_money_value(it["price"], t, "price"),
            quantity=_money_value(it["quantity"], t, "quantity"),
            amount=_money_value(it["amount"], t, "amount"),
            vat=_text_value(it["vat"]),
            payment_method=_text_value(it["payment_method"]),
            payment_subject=_text_value(it["payment_subject"]),
            measure_unit=_text_value(it["measure_unit"]),
            marking_codes=tuple(line_codes),
        ))
    out = []
    t = mapping.payments_table
    for r in rows:
        pid = int(r["id"])
        kind = r["kind"] if mapping.payment_kind is not None else KIND_SALE
        out.append(ShopPayment(
            id=pid,
            kind=_text_value(kind),
            amount=_money_value(r["amount"], t, "amount"),
            paid_at=_to_datetime(r["paid_at"], zone),
            customer_email=_text_value(r["customer_email"]),
            customer_phone=_text_value(r["customer_phone"]),
            order_ref=_text_value(r["order_ref"]),
            refund_of=r["refund_of"],
            discount=_money_value(r["discount"], t, "discount"),
            route=_text_value(r.get("route")),  # not every caller selects it
            items=tuple(by_payment.get(pid, ())),  # ordered by line_no in SQL
        ))
    return out


#: decimals a receipt allows: a wider shop column (DECIMAL(18,6)) gives them back trimmed to these,
#: and more only when the shop really wrote more (33.297 stays 33.297, for validation to reject)
_RECEIPT_PLACES = {"quantity": Decimal("0.001")}
_MONEY_PLACES = Decimal("0.01")
_EXPONENT = {_MONEY_PLACES: -2, _RECEIPT_PLACES["quantity"]: -3}   # each step's, for _trim


def _code_value(value: Any) -> Any:
    """A marking code as stored: bytes stay bytes (VARBINARY/BLOB), text stays text (raw or base64)."""
    return bytes(value) if isinstance(value, (bytearray, memoryview)) else value


def _money_value(value: Any, table: str, logical: str) -> Any:
    """A money/quantity column: exact Decimal, trimmed to the receipt's places."""
    d = value if type(value) is Decimal else _to_decimal(value, f"{table}.{logical}")
    return _trim(d, _RECEIPT_PLACES.get(logical, _MONEY_PLACES))


def _text_value(value: Any) -> Any:
    """A text column (``_TEXT``): :func:`_to_text`, the usual str or NULL passed straight through."""
    return value if value is None or type(value) is str else _to_text(value)


def _to_text(value: Any) -> Any:
    """bytes → str if valid UTF-8, else the bytes unchanged (validation rejects them by field name)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    return value


def _to_decimal(value: Any, where: str) -> Any:
    """Exact Decimal for money/quantity. A float means the shop column is FLOAT/DOUBLE/REAL: refuse.

    Unparseable text is returned unchanged so that validation names the field.
    """
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise SourceConfigError(
            f"{where} came back as a binary float; money and quantities must be DECIMAL "
            f"(MySQL) or TEXT (SQLite) to stay exact"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    text = _to_text(value)
    if isinstance(text, str):
        try:
            return Decimal(text.strip())
        except InvalidOperation:
            return text
    return text


def _trim(value: Any, step: Decimal) -> Any:
    """``0.750000`` → ``0.750``; ``33.297000`` → ``33.297`` (exact: only zeros are dropped)."""
    if not isinstance(value, Decimal) or not value.is_finite() or value.same_quantum(step):
        return value   # (same_quantum: the column has the receipt's places)
    step_exponent = _EXPONENT.get(step)
    if value.as_tuple().exponent >= (step.as_tuple().exponent if step_exponent is None else step_exponent):
        return value
    # the reference schema's DECIMAL(18,6) columns come this way: every value of every line, one quantize
    trimmed = value.quantize(step)
    if value == trimmed:
        return trimmed
    return value.normalize() if value.normalize().as_tuple().exponent < 0 else value


def _to_datetime(value: Any, zone: dt.tzinfo | None = None) -> Any:
    """DATETIME from MySQL is already a datetime; SQLite stores ISO 8601 text.

    A naive value is a wall-clock time in the shop's *zone*: it is returned aware, so that every
    date rule and every stored snapshot carries the zone instead of guessing it.
    """
    text = _to_text(value)
    if isinstance(text, str):
        try:
            text = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            return text
    if isinstance(text, dt.datetime) and text.tzinfo is None and zone is not None:
        return text.replace(tzinfo=zone)
    return text
