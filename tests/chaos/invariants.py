"""The exactly-once invariants, checked against the registers' own journals (the ground truth).

After the worker has drained:
1. for every tag, at most one fiscal document carries it; a receipt is done ⇔ exactly one does;
2. no fiscal document (receipt) without a ledger row pointing at it (same FD number and fiscal sign);
3. every committed shop row is in the ledger (nothing skipped);
4. totals in the ledger (done rows) equal totals in the journals.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Iterable

import sqlalchemy as sa

from tests.shop import journal


@dataclass
class Report:
    """What the check found; ``ok`` when every invariant holds."""

    payments: int = 0
    receipts: int = 0
    done: int = 0
    states: dict[str, int] = field(default_factory=dict)
    documents: int = 0
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    ledger_total: Decimal = Decimal(0)
    journal_total: Decimal = Decimal(0)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.orphans or self.lost or self.mismatched) \
            and self.ledger_total == self.journal_total

    def summary(self) -> dict[str, object]:
        return {"payments": self.payments, "receipts": self.receipts, "done": self.done, "states": self.states,
                "documents": self.documents, "duplicates": len(self.duplicates), "losses": len(self.lost),
                "orphans": len(self.orphans), "mismatched": len(self.mismatched),
                "ledger_total": str(self.ledger_total), "journal_total": str(self.journal_total), "ok": self.ok}


def check(shop_url: str | sa.URL, ledger_url: str, register_dirs: Iterable[Path]) -> Report:
    """Check all four invariants; the report lists every violation."""
    rep = Report()
    with sa.create_engine(shop_url, poolclass=sa.NullPool).connect() as conn:
        committed = set(conn.execute(sa.text("SELECT id FROM payments")).scalars())
    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.source_id, r.tag, r.state, r.total, r.fd_number, r.fiscal_sign, r.fn_serial "
            "FROM receipts r JOIN payments p ON p.id = r.payment_id")).all()
    eng.dispose()
    docs = [d for reg in register_dirs for d in journal(reg) if d["kind"] in ("receipt", "correction")]
    rep.payments = len({r.source_id for r in rows})
    rep.receipts = len(rows)
    rep.states = dict(Counter(r.state for r in rows))
    rep.documents = len(docs)
    by_tag: dict[str, list[dict]] = {}
    for d in docs:
        by_tag.setdefault(d.get("tag"), []).append(d)
    rep.duplicates = sorted(t for t, ds in by_tag.items() if len(ds) > 1)
    ledger_tags = {r.tag: r for r in rows}
    for r in rows:
        found = by_tag.get(r.tag, [])
        if r.state == "done":
            rep.done += 1
            rep.ledger_total += Decimal(str(r.total))
            if len(found) != 1 or (found[0]["fd"], found[0]["fp"], found[0]["fn"]) != (
                    r.fd_number, r.fiscal_sign, r.fn_serial) or Decimal(found[0]["total"]) != Decimal(str(r.total)):
                rep.mismatched.append(r.tag)
        elif found and r.state != "needs_review":
            rep.mismatched.append(f"{r.tag} ({r.state} but on the register)")
    for d in docs:
        rep.journal_total += Decimal(d["total"])
        row = ledger_tags.get(d.get("tag"))
        if row is None or (row.state == "done" and row.fd_number != d["fd"]):
            rep.orphans.append(f"{d.get('tag')}@FD{d['fd']}")
    rep.lost = sorted(committed - {r.source_id for r in rows})
    return rep
