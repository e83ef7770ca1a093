"""One register shift: the ledger's sums against the register's OWN counters (pure).

Reading the documents back (:mod:`worker.reports.reconcile`) proves each receipt; the register's
counters (Z report, FN shift totals, a Shtrih's cash registers) prove the sums the tax office sees.
Both can disagree independently: a counter can drift from the register's own documents (a firmware
fault, a receipt made by another program the ledger never saw, a document we could not read).

| difference               | meaning                                                            |
|--------------------------|--------------------------------------------------------------------|
| ``counter_differs``      | the register's amount of an operation differs from the ledger's     |
| ``counter_count_differs``| the register counted another number of receipts of that operation   |
| ``payment_differs``      | one payment type's amount differs (where the register splits them)  |

Each difference names the receipts behind it when the documents point at them (a receipt whose
document differs or is missing), or says that the documents agree with the ledger and only the
register's counter disagrees with them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

from kkt_drivers.counters import OPERATIONS, ShiftTotals, TotalsBuilder
from kkt_drivers.receipt import DocumentKind, FiscalDocument
from worker.ledger.records import ReceiptRecord
from worker.ledger.states import State
from worker.reports.reconcile import Difference

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class CounterCheck:
    """The outcome for one register shift: checked (with differences) or why it could not be."""

    register: str
    shift: int
    #: "checked" or "not_available"
    status: str
    reason: str | None = None
    register_totals: ShiftTotals | None = None
    ledger_totals: ShiftTotals | None = None
    differences: list[Difference] = field(default_factory=list)


def ledger_totals(records: Iterable[ReceiptRecord], shift: int) -> ShiftTotals:
    """The ledger's done receipts of one register shift, added up the way the register counts."""
    b = TotalsBuilder()
    for rec in records:
        if rec.state is not State.DONE or rec.total is None:
            continue
        try:
            receipt = rec.receipt() if rec.body else None
        except Exception:  # an unreadable body still counts with its total, without a payment split
            receipt = None
        if receipt is None:
            name = "sale" if rec.kind == "sale" else "sale_refund"  # GUESS from the shop row's kind
            b.add(name, rec.total)
            continue
        b.add(receipt.operation.name.lower(), rec.total, [(p.type.value, p.amount) for p in receipt.payments])
    return b.build(shift, "ledger")


def not_available(register: str, shift: int, reason: str) -> CounterCheck:
    """A register shift whose counters could not be read: listed, never passed silently."""
    return CounterCheck(register, shift, "not_available", reason)


def compare_counters(register: str, records: list[ReceiptRecord], totals: ShiftTotals,
                     documents: Iterable[FiscalDocument] = (),
                     document_differences: Iterable[Difference] = ()) -> CounterCheck:
    """Every difference between the ledger's sums of the shift and the register's counters."""
    ledger = ledger_totals(records, totals.shift_number)
    docs = [d for d in documents if d.kind in (DocumentKind.RECEIPT, DocumentKind.CORRECTION)]
    doc_sums: dict[str, Decimal] = {}
    for d in docs:
        if d.operation is not None and d.total is not None:
            name = d.operation.name.lower()
            doc_sums[name] = doc_sums.get(name, ZERO) + d.total
    by_fd = {r.fd_number: r for r in records if r.fd_number is not None}
    suspects: dict[str, list[str]] = {}
    for diff in document_differences:
        rec = by_fd.get(diff.fd_number)
        doc = next((d for d in docs if d.fd_number == diff.fd_number), None)
        op = (doc.operation.name.lower() if doc is not None and doc.operation is not None
              else _operation_of(rec) if rec is not None else None)
        if op:
            suspects.setdefault(op, []).append(f"FD {diff.fd_number} tag {diff.tag} ({diff.kind})")
    out: list[Difference] = []
    names = [n for n in OPERATIONS if n in ledger.operations or n in totals.operations]
    for name in names:
        mine, theirs = ledger.operations.get(name), totals.operations.get(name)
        l_amount, r_amount = (mine.amount if mine else ZERO), (theirs.amount if theirs else ZERO)
        why = _why(name, suspects, doc_sums if docs else None, l_amount)
        if l_amount != r_amount:
            out.append(Difference("counter_differs", None, None, l_amount, r_amount,
                                  f"{name}: register counter {r_amount} ({totals.source}), ledger {l_amount}; {why}",
                                  receipts=tuple(suspects.get(name, ()))))
        l_count = mine.count if mine else 0
        if theirs is not None and theirs.count is not None and theirs.count != l_count:
            out.append(Difference("counter_count_differs", None, None, None, None,
                                  f"{name}: register counted {theirs.count} receipts, ledger {l_count}; {why}",
                                  receipts=tuple(suspects.get(name, ()))))
        if theirs is not None and theirs.by_payment:
            mine_pay = dict(mine.by_payment) if mine else {}
            for kind in sorted(set(mine_pay) | set(theirs.by_payment)):
                lp, rp = mine_pay.get(kind, ZERO), theirs.by_payment.get(kind, ZERO)
                if lp != rp:
                    out.append(Difference("payment_differs", None, None, lp, rp,
                                          f"{name} paid {kind}: register {rp}, ledger {lp}",
                                          receipts=tuple(suspects.get(name, ()))))
    return CounterCheck(register, totals.shift_number, "checked", None, totals, ledger, out)


def _operation_of(rec: ReceiptRecord) -> str | None:
    try:
        return rec.receipt().operation.name.lower() if rec.body else None
    except Exception:
        return None


def _why(name: str, suspects: dict[str, list[str]], doc_sums: dict[str, Decimal] | None, ledger: Decimal) -> str:
    if suspects.get(name):
        return f"the register's documents differ from the ledger on {len(suspects[name])} receipt(s)"
    if doc_sums is None:
        return "documents not read back"
    docs = doc_sums.get(name, ZERO)
    if docs == ledger:
        return f"the register's documents sum to {docs} like the ledger: its own counter disagrees with them"
    return f"the register's documents sum to {docs}"
