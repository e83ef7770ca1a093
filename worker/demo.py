"""A demo shop in an SQLite file: the reference schema (SQLite dialect) with realistic rows.

``create_demo_shop`` writes a few days of 2026 sales from a small Moscow shop (VAT 22 %, a weight
item of 0.750 kg, a delivery service line, one refund of an earlier sale's line);
``add_demo_payment`` appends one more sale, so a demo can show receipts appearing live while the
worker polls the file through :class:`worker.shop.sqlite.SQLiteSource`.

Money and quantities are stored as TEXT (exact decimal strings); SQLite REAL would be binary floats.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

KOPECK = Decimal("0.01")
GRAM = Decimal("0.001")  # quantities have three decimals, as DECIMAL(10,3) in sql/schema.sql

SQLITE_SCHEMA = """
CREATE TABLE payments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, as in InnoDB
    kind            TEXT NOT NULL DEFAULT 'sale' CHECK (kind IN ('sale', 'refund')),
    order_ref       TEXT NOT NULL,
    refund_of       INTEGER NULL REFERENCES payments (id),
    amount          TEXT NOT NULL,
    customer_email  TEXT NULL,
    customer_phone  TEXT NULL,
    paid_at         TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE TABLE payment_items (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id       INTEGER NOT NULL REFERENCES payments (id),
    line_no          INTEGER NOT NULL,
    name             TEXT NOT NULL,
    price            TEXT NOT NULL,
    quantity         TEXT NOT NULL,
    amount           TEXT NOT NULL,
    vat              TEXT NOT NULL,
    payment_method   TEXT NULL,
    payment_subject  TEXT NULL,
    measure_unit     TEXT NULL,
    UNIQUE (payment_id, line_no)
);
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id    INTEGER NOT NULL REFERENCES payments (id),
    delivered_at  TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class DemoLine:
    """One line of a demo sale: name, unit price, quantity, VAT code, subject, unit."""

    name: str
    price: Decimal
    quantity: Decimal = Decimal("1")
    vat: str = "vat22"
    payment_subject: str = "commodity"
    measure_unit: str = "piece"

    @property
    def amount(self) -> Decimal:
        """price × quantity rounded to the kopeck (half up, as the register does)."""
        return (self.price * self.quantity).quantize(KOPECK, rounding=ROUND_HALF_UP)


CATALOG: tuple[DemoLine, ...] = (
    DemoLine("Чайник электрический Polaris PWK 1725", Decimal("2490.00")),
    DemoLine("Кофе молотый «Жокей» 250 г", Decimal("389.90")),
    DemoLine("Кофе в зёрнах «Арабика», на развес", Decimal("2390.00"), Decimal("0.750"), measure_unit="kg"),
    DemoLine("Полотенце махровое 50×90", Decimal("549.00"), Decimal("2")),
    DemoLine("Книга «Мастер и Маргарита»", Decimal("612.00"), vat="vat10"),
    DemoLine("Зарядное устройство USB-C 65 Вт", Decimal("1790.00")),
    DemoLine("Набор карандашей, 24 цвета", Decimal("315.50")),
    DemoLine("Термокружка 450 мл", Decimal("720.00")),
)
DELIVERY = DemoLine("Доставка", Decimal("350.00"), payment_subject="service")
CUSTOMERS: tuple[tuple[str | None, str | None], ...] = (
    ("ivan.petrov@example.ru", None),
    (None, "+79161234567"),
    ("olga.smirnova@example.com", "+79037654321"),
    ("a.kuznetsov@example.org", None),
    (None, "+79265550011"),
)
#: the demo shop keeps Moscow wall-clock times, as the demo settings say (source.timezone)
DEMO_ZONE = ZoneInfo("Europe/Moscow")
#: the first demo sale is this many days ago at 10:15 (recent: never a late payment)
FIRST_SALE_DAYS_AGO = 3


def shop_now() -> dt.datetime:
    """Now on the demo shop's wall clock (naive, Moscow)."""
    return dt.datetime.now(DEMO_ZONE).replace(tzinfo=None, microsecond=0)


def first_sale_at() -> dt.datetime:
    """When the first demo sale happened: a few days ago, so every demo receipt is an ordinary one."""
    return (shop_now() - dt.timedelta(days=FIRST_SALE_DAYS_AGO)).replace(hour=10, minute=15, second=0)


def _sale_lines(n: int) -> list[DemoLine]:
    """Deterministic basket number ``n``: one to three catalogue lines, delivery every third sale."""
    lines = [CATALOG[(n * 3 + k) % len(CATALOG)] for k in range(1 + n % 3)]
    if n == 1:
        lines.insert(0, CATALOG[2])  # the weight item is always in the demo, early
    lines = list(dict.fromkeys(lines))  # no duplicate lines within one basket
    if n % 3 == 2:
        lines.append(DELIVERY)
    return lines


def _insert_payment(conn: sqlite3.Connection, *, kind: str, order_ref: str, lines: Sequence[DemoLine],
                    paid_at: dt.datetime, email: str | None, phone: str | None,
                    refund_of: int | None = None) -> int:
    total = sum((ln.amount for ln in lines), Decimal("0.00"))
    cur = conn.execute(
        "INSERT INTO payments (kind, order_ref, refund_of, amount, customer_email, customer_phone, paid_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, order_ref, refund_of, str(total), email, phone, paid_at.isoformat(sep=" ", timespec="microseconds")),
    )
    payment_id = int(cur.lastrowid)
    conn.executemany(
        "INSERT INTO payment_items (payment_id, line_no, name, price, quantity, amount, vat,"
        " payment_method, payment_subject, measure_unit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(payment_id, no, ln.name, str(ln.price), str(ln.quantity.quantize(GRAM)), str(ln.amount), ln.vat,
          "full_payment", ln.payment_subject, ln.measure_unit) for no, ln in enumerate(lines, start=1)],
    )
    return payment_id


def create_demo_shop(path: Path, n_sales: int = 12, *, overwrite: bool = False) -> None:
    """Create the SQLite demo shop at ``path``: ``n_sales`` sales plus one refund (if n_sales ≥ 2).

    The refund returns the first line of the second sale (the 0.750 kg of coffee), so the demo shows
    a refund receipt referencing an earlier sale. Raises ``FileExistsError`` unless ``overwrite``.
    """
    if n_sales < 0:
        raise ValueError("n_sales must be >= 0")
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        path.unlink()
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executescript(SQLITE_SCHEMA)
        with conn:
            ids: list[int] = []
            start = first_sale_at()
            for n in range(n_sales):
                email, phone = CUSTOMERS[n % len(CUSTOMERS)]
                ids.append(_insert_payment(
                    conn, kind="sale", order_ref=f"ORD-2026-{1001 + n}", lines=_sale_lines(n),
                    paid_at=start + dt.timedelta(hours=5 * n, minutes=7 * n), email=email, phone=phone,
                ))
            if n_sales >= 2:
                refunded = _sale_lines(1)[0]
                email, phone = CUSTOMERS[1 % len(CUSTOMERS)]
                _insert_payment(
                    conn, kind="refund", order_ref="ORD-2026-1002", lines=[refunded], refund_of=ids[1],
                    paid_at=start + dt.timedelta(hours=5 * n_sales + 1), email=email, phone=phone,
                )
    finally:
        conn.close()


def add_demo_payment(path: Path, lines: Sequence[DemoLine] | None = None, *,
                     email: str | None = "demo.buyer@example.ru", phone: str | None = None,
                     paid_at: dt.datetime | None = None) -> int:
    """Append one paid sale to the demo shop and return its id (the next basket if ``lines`` is None)."""
    conn = sqlite3.connect(Path(path), timeout=5)
    try:
        with conn:
            count = conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0]
            return _insert_payment(
                conn, kind="sale", order_ref=f"ORD-2026-{1001 + count}",
                lines=list(lines) if lines is not None else _sale_lines(count),
                paid_at=paid_at or shop_now(),
                email=email, phone=phone,
            )
    finally:
        conn.close()
