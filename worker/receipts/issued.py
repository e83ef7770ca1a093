"""What a sale's receipts carried, and what later refunds took from its lines (fz54-receipts.md §4.2).

Pure data plus the arithmetic a refund and a settlement share: issued lines grouped back by shop
line, one shop line seen whole, and the cumulative rounding of partial refunds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kkt_drivers.receipt import KOPECK, Item, TaxSystem, money, quantity
from worker.receipts.rules import round_kop


@dataclass(frozen=True)
class IssuedLine:
    """A receipt line as issued (or to be issued) with the shop line it came from.

    ``credit`` is the part of the line's amount paid by credit (1216), for 1214 = 5 / 6 lines.
    """

    line_no: int
    item: Item
    credit: Decimal = Decimal(0)


@dataclass(frozen=True)
class IssuedSale:
    """What was fiscalized for a sale, read back from the ledger: the lines a refund or a settlement
    mirrors (VAT, 1214, 1212, 2108, prices *as issued*), the 1008 contact and the sale's local date."""

    lines: tuple[IssuedLine, ...]
    contact: str
    day: dt.date | None = None
    #: 1055 of the issued receipt: a refund keeps the tax system of the sale even if the shop changed it
    tax_system: TaxSystem | None = None


@dataclass(frozen=True)
class Refunded:
    """What earlier refunds took from one shop line: cumulative quantity and amount."""

    quantity: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)



def by_line(lines: Sequence[IssuedLine]) -> dict[int, list[IssuedLine]]:
    """Issued lines grouped by shop line (a discount or an earlier repricing may have split one)."""
    out: dict[int, list[IssuedLine]] = {}
    for ln in lines:
        out.setdefault(ln.line_no, []).append(ln)
    return out


def whole_line(group: Sequence[IssuedLine]) -> Item:
    """One shop line as issued: its pieces' quantity and amount, the first piece's requisites."""
    qty = sum((ln.item.quantity for ln in group), Decimal(0))
    amount = sum((ln.item.amount for ln in group), Decimal(0))
    first = group[0].item
    price = first.price if len(group) == 1 else (amount / qty).quantize(KOPECK)
    return dataclasses.replace(first, price=price, quantity=qty, amount=amount)


def portion_amount(whole_qty: Decimal, whole_amount: Decimal, before: Refunded, qty: Decimal) -> Decimal:
    """The amount of refunding *qty* more of a line (cumulative rounding, §4.2).

    The cumulative refunded amount is ``round(amount × cumulative qty / qty)``, so the parts of a line
    add up to exactly its amount when it is refunded in full — the last part takes the remainder —
    and never exceed it whatever the sequence (three refunds of 0.333 kg of a 99.89 line: 33.30 + 33.29
    + 33.30).
    """
    total_qty = before.quantity + qty
    if total_qty >= whole_qty:
        return whole_amount - before.amount
    return max(round_kop(whole_amount * total_qty / whole_qty) - before.amount, Decimal(0))



def refunded_before(already: Mapping[int, Any], line_no: int, whole: Item | None = None) -> Refunded:
    """What earlier refunds took from *line_no* (ledger data: trusted, but still never float).

    A bare quantity (older callers) gets its amount by the cumulative rule.
    """
    value = already.get(line_no)
    if value is None:
        return Refunded()
    if isinstance(value, Refunded):
        return Refunded(quantity(value.quantity), money(value.amount))
    q = quantity(value)
    if whole is None:
        return Refunded(q, Decimal(0))
    return Refunded(q, portion_amount(whole.quantity, whole.amount, Refunded(), q))

