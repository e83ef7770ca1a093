"""One register shift: the ledger's documents against the register's own, difference by difference.

The register is the truth. Read every document of the shift back from the register (by FD number,
between the shift's opening and closing documents) and compare with the receipts the ledger
recorded for that register and shift:

| difference             | meaning                                                           |
|------------------------|-------------------------------------------------------------------|
| ``missing_in_ledger``  | the register holds a receipt the ledger does not know (adopt or investigate) |
| ``missing_on_register``| the ledger says done with an FD the register does not hold         |
| ``total_differs``      | same FD, other total (or other tag)                               |
| ``counter_differs``    | the Z report's counter for an operation differs from the documents' sum |
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping

from kkt_drivers.receipt import DocumentKind, FiscalDocument
from worker.ledger.records import ReceiptRecord
from worker.ledger.states import State


@dataclass(frozen=True)
class Difference:
    kind: str
    fd_number: int | None
    tag: str | None
    ledger_total: Decimal | None
    register_total: Decimal | None
    note: str
    #: the receipts behind a sum's difference (``FD 7 tag S3 (total_differs)``), when known
    receipts: tuple[str, ...] = ()


def reconcile_shift(records: Iterable[ReceiptRecord], documents: Iterable[FiscalDocument],
                    counters: Mapping[str, Decimal] | None = None) -> list[Difference]:
    """Differences between the ledger's done receipts and the register's documents of one shift.

    *counters*: the register's own totals by operation name (``sale``, ``sale_refund`` …) from the
    Z report, when the driver can read them.
    """
    ledger = {r.fd_number: r for r in records if r.state is State.DONE and r.fd_number is not None}
    fiscal = {d.fd_number: d for d in documents if d.kind in (DocumentKind.RECEIPT, DocumentKind.CORRECTION)}
    out: list[Difference] = []
    for fd, doc in sorted(fiscal.items()):
        rec = ledger.get(fd)
        if rec is None:
            out.append(Difference("missing_in_ledger", fd, doc.tag, None, doc.total,
                                  "the register holds this receipt; the ledger has no receipt with its FD"))
        elif rec.total != doc.total or (doc.tag is not None and rec.tag != doc.tag):
            out.append(Difference("total_differs", fd, rec.tag, rec.total, doc.total,
                                  f"ledger tag {rec.tag}, register tag {doc.tag}"))
    for fd, rec in sorted(ledger.items()):
        if fd not in fiscal:
            out.append(Difference("missing_on_register", fd, rec.tag, rec.total, None,
                                  "the ledger recorded this FD for the shift; the register does not hold it"))
    if counters is not None:
        sums: dict[str, Decimal] = {}
        for doc in fiscal.values():
            if doc.operation is not None and doc.total is not None:
                name = doc.operation.name.lower()
                sums[name] = sums.get(name, Decimal("0.00")) + doc.total
        for name in sorted(set(sums) | set(counters)):
            got, want = sums.get(name, Decimal("0.00")), counters.get(name, Decimal("0.00"))
            if got != want:
                out.append(Difference("counter_differs", None, None, got, want,
                                      f"Z report counter {name} = {want}, documents sum to {got}"))
    return out
