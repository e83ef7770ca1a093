"""Marked goods in the receipt builder: a shop line with N marking codes → N units of one code each.

Pure. The shop stores codes per unit (``payment_item_codes``: payment_id, line_no, unit_no, code;
raw bytes with GS, or base64 — see docs/marking.md); :mod:`worker.shop.source` attaches them to
their line as :attr:`ShopItem.marking_codes`. Rules (marking.md §1.2–§1.3, §6):

* a line with codes is payment subject 33 (31 when the shop says so); an empty subject becomes 33,
  any other subject is refused; a line of subject 33/31 without codes is refused;
* a piece line carries exactly one code per unit (quantity = number of codes); a measured line
  (2108 ≠ pieces) carries one code for the whole quantity; fractions of a piece are not taken
  from the shop yet;
* no code twice in one payment; each unit becomes its own line (quantity 1) so that every receipt
  line binds one code (fr_drv_ng#185: «только один код маркировки» per position);
* receipts are cut so that none holds more than 128 codes (the FN's check table, A3h).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from kkt_drivers.marking import MarkingCodeError, from_storage
from kkt_drivers.receipt import (
    MARKED_SUBJECTS, MAX_MARKED_PER_RECEIPT, Item, MeasureUnit, PaymentSubject, money,
)
from worker.receipts.rules import InvalidPayment


def codes_of(raw: Any, f: str) -> list[bytes]:
    """The parsed codes of a shop line (``marking_codes``), raw bytes each; InvalidPayment by field."""
    values = getattr(raw, "marking_codes", None) or ()
    if not isinstance(values, (list, tuple)):
        raise InvalidPayment(f"{f}.marking_codes", "must be a list of codes")
    out: list[bytes] = []
    for k, value in enumerate(values):
        where = f"{f}.marking_codes[{k}]"
        if not isinstance(value, (bytes, bytearray, memoryview, str)):
            raise InvalidPayment(where, f"must be bytes or text, got {type(value).__name__}")
        try:
            out.append(from_storage(value, field=where).raw)
        except MarkingCodeError as exc:
            raise InvalidPayment(where, str(exc)) from None
    return out


def subject_for(subject: PaymentSubject, explicit: bool, codes: Sequence[bytes], f: str) -> PaymentSubject:
    """1212 of a line given its codes: codes need 33/31, 33/31 needs codes."""
    if codes and subject not in MARKED_SUBJECTS:
        if explicit:
            raise InvalidPayment(f"{f}.payment_subject",
                                 f"a line with marking codes must be 33 (or 31), got {int(subject)}")
        return PaymentSubject.MARKED_COMMODITY
    if not codes and subject in MARKED_SUBJECTS:
        raise InvalidPayment(f"{f}.marking_codes", f"payment subject {int(subject)} needs one marking code per unit")
    return subject


def units(item: Item, codes: Sequence[bytes], f: str) -> list[Item]:
    """*item* as one line per code (quantity 1 each for pieces); the item itself when unmarked."""
    if not codes:
        return [item]
    if item.measure_unit != MeasureUnit.PIECE:
        if len(codes) != 1:
            raise InvalidPayment(f"{f}.marking_codes", f"a measured line carries one code, got {len(codes)}")
        return [dataclasses.replace(item, marking_code=codes[0])]
    if item.quantity != item.quantity.to_integral_value():
        raise InvalidPayment(f"{f}.quantity", f"{item.quantity}: selling part of a marked unit is not supported "
                             "from the shop's tables yet")
    if Decimal(len(codes)) != item.quantity:
        raise InvalidPayment(f"{f}.marking_codes",
                             f"{len(codes)} codes for quantity {item.quantity}: one code per unit")
    return [dataclasses.replace(item, quantity=Decimal(1), amount=money(item.price), marking_code=code)
            for code in codes]


def check_unique(lines: Sequence[tuple[str, Sequence[bytes]]]) -> None:
    """No code twice in a payment; *lines* are (field, codes) pairs."""
    seen: dict[bytes, str] = {}
    for f, codes in lines:
        for k, code in enumerate(codes):
            where = f"{f}.marking_codes[{k}]"
            if code in seen:
                raise InvalidPayment(where, f"the same code as {seen[code]}")
            seen[code] = where


def cut_by_codes(chunks: list[list[Any]]) -> list[list[Any]]:
    """Split receipts so that none carries more than 128 codes (lines keep their order).

    Elements are Items or anything with an ``item`` (the builder's issued lines).
    """
    out: list[list[Any]] = []
    for chunk in chunks:
        current: list[Any] = []
        marked = 0
        for ln in chunk:
            is_marked = getattr(ln, "item", ln).marking_code is not None
            if is_marked and marked == MAX_MARKED_PER_RECEIPT:
                out.append(current)
                current, marked = [], 0
            current.append(ln)
            marked += is_marked
        out.append(current)
    return out


def refund_units(sold: Sequence[Item], qty: Decimal, done: Decimal, codes: Sequence[bytes], f: str,
                 amount: Decimal | None = None) -> list[Item]:
    """The units of a marked sale line that a refund of *qty* gives back, with their codes.

    The refund row may name the codes (its own ``payment_item_codes`` rows); otherwise the units
    after the *done* already refunded, in the sale's order. *amount* (the refund row's) must equal
    the chosen units' amounts as issued.
    """
    chosen = _choose_units(sold, qty, done, codes, f)
    if amount is not None and sum((u.amount for u in chosen), Decimal(0)) != amount:
        raise InvalidPayment(f"{f}.amount", f"{amount} != {sum((u.amount for u in chosen), Decimal(0))}, the amounts "
                             "the refunded marked units were sold for")
    return chosen


def _choose_units(sold: Sequence[Item], qty: Decimal, done: Decimal, codes: Sequence[bytes], f: str) -> list[Item]:
    if qty != qty.to_integral_value() or len(sold) == 1 and sold[0].measure_unit != MeasureUnit.PIECE:
        if len(sold) == 1 and sold[0].measure_unit != MeasureUnit.PIECE and qty == sold[0].quantity:
            return [sold[0]]
        raise InvalidPayment(f"{f}.quantity", f"{qty}: a marked line is refunded by whole units")
    if codes:
        by_code = {u.marking_code: u for u in sold}
        missing = [k for k, c in enumerate(codes) if c not in by_code]
        if missing:
            raise InvalidPayment(f"{f}.marking_codes[{missing[0]}]", "is not a code of the refunded line")
        if Decimal(len(codes)) != qty:
            raise InvalidPayment(f"{f}.marking_codes", f"{len(codes)} codes for quantity {qty}")
        return [by_code[c] for c in codes]
    start = int(done)
    return list(sold[start:start + int(qty)])
