"""A register's own shift counters: what the register itself says it took in a shift.

The accountant's strongest check is not "the ledger agrees with the documents we read back" but
"the ledger agrees with the register's own totals" — the Z report, the FN's shift counters, a
Shtrih's cash registers. :class:`ShiftTotals` is that answer in driver-neutral form:

* per operation (requisite 1054, named like :class:`~kkt_drivers.receipt.Operation`:
  ``sale``, ``sale_refund``, ``expense``, ``expense_refund``): the number of receipts (None where the
  register does not count them), the amount, and the amount per payment type (``cash``,
  ``electronic``, ``prepaid``, ``credit``, ``other``: :class:`~kkt_drivers.receipt.PaymentType`) where
  the register splits it;
* where the numbers come from (``source``: shown to the accountant, so a guess is visible) and
  whether they are final (a closed shift's Z report) or running (an open shift).

Money is Decimal kopecks, never float. Pure data plus a small builder that drivers and emulators
share (:class:`TotalsBuilder`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping

from kkt_drivers.receipt import Operation, PaymentType, money

ZERO = Decimal("0.00")
#: operation names in the order registers print them
OPERATIONS: tuple[str, ...] = tuple(op.name.lower() for op in Operation)
PAYMENT_TYPES: tuple[str, ...] = tuple(t.value for t in PaymentType)



class CountersError(ValueError):
    """A register's counters answer that does not have the shape its driver documents."""


def exact_amount(v: Any, where: str) -> Decimal:
    """A money amount from a register's JSON answer: a number or a decimal string, never a float (a float
    has already lost kopecks) or nothing; CountersError naming *where* otherwise."""
    if isinstance(v, (bool, float)) or v is None:
        raise CountersError(f"{where} is not an exact amount: {v!r}")
    try:
        return money(Decimal(str(v)))
    except (ArithmeticError, ValueError) as exc:
        raise CountersError(f"{where} is not an amount: {v!r}") from exc

@dataclass(frozen=True)
class OperationTotals:
    """One operation's counter: receipts, amount, amount by payment type (may be empty)."""

    count: int | None
    amount: Decimal
    by_payment: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class ShiftTotals:
    """The register's counters of one shift (see the module header)."""

    shift_number: int
    operations: Mapping[str, OperationTotals]
    #: where the numbers come from, e.g. "Z report FD 12" or "cash registers 193–208 (1Ah)"
    source: str
    #: True when the shift is closed and the numbers are its Z report's (final)
    final: bool = False

    def amount(self, operation: str) -> Decimal:
        """The counter's amount of *operation* (0.00 when the register has none)."""
        op = self.operations.get(operation)
        return op.amount if op else ZERO

    def amounts(self) -> dict[str, Decimal]:
        """Amounts by operation name (the form :func:`worker.reports.reconcile.reconcile_shift` takes)."""
        return {name: op.amount for name, op in self.operations.items()}

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (money as exact strings); :func:`from_json` reads it back."""
        return {"shift": self.shift_number, "source": self.source, "final": self.final,
                "operations": {name: {"count": op.count, "amount": f"{op.amount:.2f}",
                                      "by_payment": {k: f"{v:.2f}" for k, v in op.by_payment.items()}}
                               for name, op in self.operations.items()}}


def from_json(data: Mapping[str, Any], *, source: str | None = None) -> ShiftTotals:
    """The inverse of :meth:`ShiftTotals.to_json` (the emulator's Z report keeps totals this way)."""
    raw = data.get("operations") or {}
    order = sorted(raw, key=lambda n: (OPERATIONS.index(n) if n in OPERATIONS else len(OPERATIONS), n))
    ops = {name: OperationTotals(raw[name].get("count"), money(raw[name]["amount"]),
                                 {k: money(v) for k, v in sorted((raw[name].get("by_payment") or {}).items())})
           for name in order}
    return ShiftTotals(int(data["shift"]), ops, source or str(data.get("source", "")), bool(data.get("final")))


class TotalsBuilder:
    """Adds receipts up into counters, the way a register does when it closes one."""

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._amount: dict[str, Decimal] = {}
        self._pay: dict[str, dict[str, Decimal]] = {}

    def add(self, operation: str, amount: Decimal, payments: Iterable[tuple[str, Decimal]] = ()) -> None:
        """Count one receipt of *operation* for *amount*, paid as *payments* ((type, amount) pairs)."""
        self._count[operation] = self._count.get(operation, 0) + 1
        self._amount[operation] = self._amount.get(operation, ZERO) + money(amount)
        pay = self._pay.setdefault(operation, {})
        for kind, value in payments:
            pay[kind] = pay.get(kind, ZERO) + money(value)

    def build(self, shift: int, source: str, *, final: bool = False) -> ShiftTotals:
        """The counters so far (every operation present, zero where nothing happened)."""
        ops = {name: OperationTotals(self._count.get(name, 0), self._amount.get(name, ZERO),
                                     dict(sorted(self._pay.get(name, {}).items())))
               for name in OPERATIONS}
        return ShiftTotals(shift, ops, source, final)


def skewed(totals: ShiftTotals, skew: Mapping[str, Mapping[str, str]]) -> ShiftTotals:
    """*totals* with a test's deliberate drift added: ``{operation: {"amount": "1.00", "payment": "cash"}}``.

    Only emulators call this (their ``tamper_counter`` fault), so a test can prove that a register
    whose counter disagrees with the ledger is reported.
    """
    ops = dict(totals.operations)
    for name, change in skew.items():
        delta = money(change.get("amount", "0"))
        op = ops.get(name) or OperationTotals(0, ZERO, {})
        pay = dict(op.by_payment)
        kind = change.get("payment")
        if kind:
            pay[kind] = pay.get(kind, ZERO) + delta
        ops[name] = OperationTotals(op.count, op.amount + delta, pay)
    return ShiftTotals(totals.shift_number, ops, totals.source, totals.final)
