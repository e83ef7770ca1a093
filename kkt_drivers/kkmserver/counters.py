"""KKMServer shift counters: the ``GetCounters`` command (driver side and emulator side).

Source: salesduck/kkmserver-types ``src/commands/GetCounters.ts`` ("Получить счетчики ФН", which
reproduces KKMServer's own doc comments), and KKMServer's changelog naming GetCounters as the FFD 1.2
FN counters. The answer holds a list of counters::

    {"Сounters": [{"СountersType": "Shift", "ReceiptType": "Shell", "Count": 2, "Sum": 2400.00,
                   "Cash": 1200.00, "ElectronicPayment": 1200.00, "AdvancePayment": 0, "Credit": 0,
                   "CashProvision": 0, "Tax20": 0, …, "CorrectionsCount": 0, "CorrectionsSum": 0}, …]}

``СountersType`` is ``Total`` (the FN's) or ``Shift``; ``ReceiptType`` is ``Shell`` (sic: приход),
``ShellReturn``, ``Buy``, ``BuyReturn``.

UNVERIFIED: the type writes ``Сounters`` and ``СountersType`` with a **Cyrillic** "С" (U+0421),
probably as KKMServer's documentation does. The emulator answers that spelling; the driver
accepts it and the Latin one. GUESS: the Shift counters are those of the open shift, and after a
close those of the closed shift until the next opens; GetCounters names no shift, so the driver
compares ``SessionNumber`` of GetDataKKT with the shift asked for.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from kkt_drivers.counters import (OPERATIONS, CountersError, OperationTotals, ShiftTotals, TotalsBuilder,
                                  exact_amount)
from kkt_drivers.receipt import Operation

COMMAND = "GetCounters"
#: the spellings of the type's keys (Cyrillic С first: the documented one)
COUNTERS_KEYS = ("\u0421ounters", "Counters")
TYPE_KEYS = ("\u0421ountersType", "CountersType")
#: our operation → KKMServer's ReceiptType
RECEIPT_TYPES = {"sale": "Shell", "sale_refund": "ShellReturn", "expense": "Buy", "expense_refund": "BuyReturn"}
#: our payment type → KKMServer's field
PAYMENT_FIELDS = {"cash": "Cash", "electronic": "ElectronicPayment", "prepaid": "AdvancePayment",
                  "credit": "Credit", "other": "CashProvision"}
SOURCE = "KKMServer GetCounters (FN shift counters)"


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in obj:
            return obj[k]
    return None


def decode(answer: dict[str, Any], shift: int) -> ShiftTotals:
    """The ``Shift`` counters of a GetCounters answer as :class:`ShiftTotals` of shift *shift*."""
    entries = _first(answer, COUNTERS_KEYS)
    if not isinstance(entries, list):
        raise CountersError("GetCounters answer has no Сounters list")
    by_type = {e.get("ReceiptType"): e for e in entries
               if isinstance(e, dict) and _first(e, TYPE_KEYS) == "Shift"}
    if not by_type:
        raise CountersError("GetCounters answer has no Shift counters")
    ops: dict[str, OperationTotals] = {}
    for name in OPERATIONS:
        e = by_type.get(RECEIPT_TYPES[name])
        if e is None:
            ops[name] = OperationTotals(0, Decimal("0.00"))
            continue
        count = e.get("Count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise CountersError(f"{RECEIPT_TYPES[name]}.Count is not an integer: {count!r}")
        pays = {ours: exact_amount(e.get(theirs, 0), theirs) for ours, theirs in PAYMENT_FIELDS.items() if theirs in e}
        ops[name] = OperationTotals(count, exact_amount(e.get("Sum", 0), "Sum"), {k: v for k, v in sorted(pays.items()) if v})
    return ShiftTotals(shift, ops, SOURCE)


def _entries(kind: str, totals: ShiftTotals) -> list[dict[str, Any]]:
    out = []
    for name, receipt_type in RECEIPT_TYPES.items():
        op = totals.operations.get(name) or OperationTotals(0, Decimal("0.00"))
        # GUESS: corrections and VAT sums are not split out by the emulator (zero)
        out.append({TYPE_KEYS[0]: kind, "ReceiptType": receipt_type, "Count": op.count or 0, "Sum": op.amount,
                    **{theirs: op.by_payment.get(ours, Decimal("0.00")) for ours, theirs in PAYMENT_FIELDS.items()},
                    "Tax20": Decimal("0.00"), "Tax10": Decimal("0.00"), "Tax0": Decimal("0.00"),
                    "TaxNo": Decimal("0.00"), "Tax120": Decimal("0.00"), "Tax110": Decimal("0.00"),
                    "CorrectionsCount": 0, "CorrectionsSum": Decimal("0.00")})
    return out


def get_counters(device: Any, cmd: dict[str, Any], _: Any) -> dict[str, Any]:
    """The emulator's GetCounters: the FN's totals and the current (or last) shift's."""
    model = device.model
    st = model.status()
    shift = model.shift_totals() or ShiftTotals(st.shift_number, {}, SOURCE)
    total = TotalsBuilder()
    for doc in model.documents():
        if doc["fn"] == st.fn_serial and doc["kind"] in ("receipt", "correction"):
            total.add(Operation(doc["operation"]).name.lower(), Decimal(doc["total"]),
                      [(p["type"], Decimal(p["amount"])) for p in doc.get("payments", ())])
    return {COUNTERS_KEYS[0]: _entries("Total", total.build(0, "FN")) + _entries("Shift", shift)}
