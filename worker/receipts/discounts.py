"""Spreading an order-level discount over receipt lines (fz54-receipts.md §4.3).

A receipt has no "discount" requisite: 1079 (price) and 1043 (amount) are already discounted, and
every line must keep ``amount == round_half_up(price × quantity, 2)``. So the discount is cut into
whole kopecks per line, proportionally to the line totals, and a line whose new total no longer
divides by its quantity is split into ``(quantity − 1)`` units plus ``1`` unit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from kkt_drivers.receipt import KOPECK, Item, money
from worker.receipts.rules import floor_kop, round_kop


def spread_discount(lines: Sequence[Item], discount: Decimal) -> list[Item]:
    """Return *lines* with *discount* taken off, every line still exact to the kopeck.

    * d_i = round_half_up(D × L_i / ΣL) for every line but the last, the last takes the
      remainder; shares are then clamped to ``0 ≤ d_i ≤ L_i`` (excess moved to other lines), so no
      line ever goes negative and Σ d_i == D exactly.
    * The result sums to ``Σ L_i − D``; line order is kept (a split line yields two adjacent lines).

    Raises ValueError if *discount* is negative, not whole kopecks, or larger than the lines' total.
    """
    if isinstance(discount, float):
        raise TypeError("discount must not be float")
    d = Decimal(discount)
    if d < 0 or d != money(d):
        raise ValueError(f"discount must be >= 0 in whole kopecks, got {discount}")
    if not lines:
        if d:
            raise ValueError("a discount needs at least one line")
        return []
    total = sum((ln.amount for ln in lines), Decimal(0))
    if d > total:
        raise ValueError(f"discount {d} exceeds the lines' total {total}")
    if d == 0:
        return list(lines)

    return [it for _, it in spread_discount_keyed([(0, ln) for ln in lines], d)]


def spread_discount_keyed(lines: Sequence[tuple[int, Item]], discount: Decimal) -> list[tuple[int, Item]]:
    """:func:`spread_discount` keeping each line's key (the shop's ``line_no``) on the lines it becomes,
    so that a refund of a discounted order still finds the shop line in a split line."""
    d = Decimal(discount)
    items = [it for _, it in lines]
    total = sum((it.amount for it in items), Decimal(0))
    if not items or d == 0:
        return list(lines)
    if d < 0 or d != money(d) or d > total:
        raise ValueError(f"discount must be whole kopecks in 0..{total}, got {discount}")
    shares = [round_kop(d * it.amount / total) for it in items[:-1]]
    shares.append(d - sum(shares, Decimal(0)))
    _clamp(shares, [it.amount for it in items])
    out: list[tuple[int, Item]] = []
    for (key, it), share in zip(lines, shares):
        out.extend((key, piece) for piece in _reprice(it, it.amount - share))
    return out


def reprice(line: Item, quantity: Decimal, amount: Decimal) -> list[Item]:
    """*quantity* of *line*'s goods for exactly *amount*: the same price when price × quantity rounds to
    it, else the kopeck price that does, else split (quantity − 1 units + 1 unit) as for a discount."""
    part = dataclasses.replace(line, quantity=quantity, amount=round_kop(line.price * quantity))
    return _reprice(part, amount)


def _clamp(shares: list[Decimal], caps: list[Decimal]) -> None:
    """Bring every share into [0, cap] without changing the sum (Σ caps ≥ Σ shares ≥ 0)."""
    excess = Decimal(0)
    for i, (s, cap) in enumerate(zip(shares, caps)):
        if s > cap:
            excess += s - cap
            shares[i] = cap
        elif s < 0:
            excess += s  # a negative share is a debt the others must absorb
            shares[i] = Decimal(0)
    # walk back from the last line (the remainder line) so earlier lines stay proportional
    for i in reversed(range(len(shares))):
        if excess == 0:
            break
        if excess > 0:
            room = caps[i] - shares[i]
            take = min(room, excess)
        else:
            take = -min(shares[i], -excess)
        shares[i] += take
        excess -= take


def _reprice(line: Item, new_total: Decimal) -> list[Item]:
    """One or two lines with the same goods whose amounts add up to *new_total* exactly."""
    qty = line.quantity
    if new_total == line.amount:
        return [line]
    exact = new_total / qty
    # the price either side of the exact quotient; with qty ≤ 1 one of them always rounds back
    for price in sorted(
        {floor_kop(exact), exact.quantize(KOPECK, rounding=ROUND_HALF_UP), floor_kop(exact) + KOPECK}
    ):
        if price >= 0 and round_kop(price * qty) == new_total:
            return [dataclasses.replace(line, price=price, amount=new_total)]
    if qty <= 1:  # unreachable by the argument above; keep the invariant loud
        raise AssertionError(f"no kopeck price gives {new_total} for quantity {qty}")
    # (qty − 1) units at the floor price plus one unit carrying the rest (Komtet correction_positions)
    price = floor_kop(exact)
    rest_qty = qty - 1
    rest_amount = round_kop(price * rest_qty)
    last = new_total - rest_amount
    return [
        dataclasses.replace(line, price=price, quantity=rest_qty, amount=rest_amount),
        dataclasses.replace(line, price=last, quantity=Decimal(1), amount=last),
    ]
