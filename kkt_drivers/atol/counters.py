"""ATOL shift counters: the JSON task ``getShiftTotals`` (driver side and emulator side).

Kept apart from :mod:`.tasks` and :mod:`.emulation` so the counters are one small module.

The task is ``{"type": "getShiftTotals"}``; its result, as a TypeScript ATOL Web Requests client
types it (``get-shift-totals-task-result.ts`` / ``shift-totals.ts``; ATOL's own JSON task document
lists the task under "Запрос итогов смены"):

```
{"shiftTotals": {"shiftNumber": 5, "cashDrawer": {"sum": 100.0},
                 "income": {"count": 0, "sum": 0}, "outcome": {"count": 0, "sum": 0},
                 "receipts": {"sell":       {"count": 2, "sum": 2400.0,
                                             "payments": {"cash": 1200.0, "electronically": 1200.0,
                                                          "prepaid": 0, "credit": 0, "other": 0,
                                                          "userPaymentType-1": 0, …}},
                              "sellReturn": {…}, "buy": {…}, "buyReturn": {…}}}}
```

``receipts.sell`` = приход, ``sellReturn`` = возврат прихода, ``buy`` = расход, ``buyReturn`` =
возврат расхода. ``userPaymentType-1..5`` are user-defined electronic types: counted as electronic.
Sums are JSON numbers; the transport parses them as Decimal (never float).

GUESSES (no vendor source at hand): that the totals are those of the open shift, and after a
close those of the shift just closed until the next opens (the driver checks ``shiftNumber``
and answers None for any other shift); that correction receipts are included.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from kkt_drivers.counters import OPERATIONS, CountersError, OperationTotals, ShiftTotals, exact_amount

TASK = "getShiftTotals"
#: our operation name → ATOL's key in ``shiftTotals.receipts``
RECEIPT_KEYS = {"sale": "sell", "sale_refund": "sellReturn", "expense": "buy", "expense_refund": "buyReturn"}
#: our payment type → ATOL's key in ``payments``
PAYMENT_KEYS = {"cash": "cash", "electronic": "electronically", "prepaid": "prepaid", "credit": "credit",
                "other": "other"}
USER_PAYMENT_TYPES = tuple(f"userPaymentType-{n}" for n in range(1, 6))
SOURCE = "ATOL getShiftTotals"


def decode(result: Any) -> ShiftTotals:
    """:class:`ShiftTotals` from a getShiftTotals result; CountersError when malformed."""
    try:
        body = result["shiftTotals"]
        shift = int(body["shiftNumber"])
        receipts = body["receipts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CountersError(f"getShiftTotals answer lacks {exc}") from exc
    ops: dict[str, OperationTotals] = {}
    for name in OPERATIONS:
        block = receipts.get(RECEIPT_KEYS[name]) or {}
        count = block.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise CountersError(f"receipts.{RECEIPT_KEYS[name]}.count is not an integer: {count!r}")
        pays: dict[str, Decimal] = {}
        for ours, theirs in PAYMENT_KEYS.items():
            if theirs in (block.get("payments") or {}):
                pays[ours] = exact_amount(block["payments"][theirs], f"{RECEIPT_KEYS[name]}.payments.{theirs}")
        for user in USER_PAYMENT_TYPES:
            if user in (block.get("payments") or {}):
                pays["electronic"] = pays.get("electronic", Decimal("0.00")) + exact_amount(block["payments"][user], user)
        ops[name] = OperationTotals(count, exact_amount(block.get("sum", 0), f"{RECEIPT_KEYS[name]}.sum"),
                                    {k: v for k, v in sorted(pays.items()) if v})
    return ShiftTotals(shift, ops, SOURCE)


def encode(totals: ShiftTotals) -> dict[str, Any]:
    """The emulator's getShiftTotals result for *totals* (amounts as Decimal: the server writes
    them as JSON number tokens from their digits)."""
    receipts: dict[str, Any] = {}
    for name, key in RECEIPT_KEYS.items():
        op = totals.operations.get(name) or OperationTotals(0, Decimal("0.00"))
        receipts[key] = {"count": op.count or 0, "sum": op.amount,
                         "payments": {**{theirs: op.by_payment.get(ours, Decimal("0.00"))
                                         for ours, theirs in PAYMENT_KEYS.items()},
                                      **{u: Decimal("0.00") for u in USER_PAYMENT_TYPES}}}
    # GUESS: income/outcome (внесения/выплаты) and the cash drawer are not modelled: zero
    return {"shiftTotals": {"shiftNumber": totals.shift_number, "cashDrawer": {"sum": Decimal("0.00")},
                            "income": {"count": 0, "sum": Decimal("0.00")},
                            "outcome": {"count": 0, "sum": Decimal("0.00")}, "receipts": receipts}}


class ShiftTotalsTasks:
    """Mixed into the emulation: ``getShiftTotals`` answered from the register model."""

    model: Any

    def _t_getShiftTotals(self, task: dict[str, Any]) -> dict[str, Any]:
        totals = self.model.shift_totals()
        if totals is None:               # a fresh register: no shift yet
            st = self.model.status()
            totals = ShiftTotals(st.shift_number, {}, SOURCE)
        return encode(totals)


def read(run: Any, shift: int | None) -> ShiftTotals | None:
    """Driver side: run getShiftTotals through *run* (the driver's ``_run``) and decode it; None when
    the register's totals are of another shift than *shift*."""
    from kkt_drivers.errors import TransientError

    (res,) = run([{"type": TASK}])
    try:
        totals = decode(res or {})
    except CountersError as exc:
        raise TransientError(f"ATOL getShiftTotals answer is malformed: {exc}") from exc
    return None if shift is not None and totals.shift_number != shift else totals
