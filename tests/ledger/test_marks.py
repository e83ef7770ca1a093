"""The FN's check result (2106) of every marked line is kept with its receipt (receipt_marks)."""
from __future__ import annotations

import dataclasses

from kkt_drivers.receipt import MarkingResult
from tests.ledger.test_ledger import doc, entry, ingest
from worker.ledger.states import State
from worker.ledger.store import Ledger

SHOE = b"0104603988000001215Jr7Ypq2Z1X9A\x1d91EE10\x1d92" + b"AbC/+=" * 7 + b"zz"
MILK = b"0104650194496163215'oQ5YJ\x1d93dGVz"


def test_marking_results_are_written_with_the_outcome_on_both_paths(ledger: Ledger) -> None:
    """Given two receipts made with marked lines, when each is recorded done (the hot path with an
    attempt, and the general path without), then marks_of lists each line's code and 2106, and a
    receipt without results has none."""
    ingest(ledger, [entry(1), entry(2), entry(3)], cursor=3)
    r1, r2, r3 = sorted(ledger.list_receipts(), key=lambda r: r.source_id)
    marks = (MarkingResult(0, SHOE, 0x0F), MarkingResult(2, MILK, 0x05))
    attempt = ledger.record_intent(r1.id, register="kkt1", fn_serial="9999078900000001", fd_before=0)
    ledger.record_done(r1.id, dataclasses.replace(doc(1, "S1"), marking_results=marks), attempt_id=attempt)
    ledger.record_intent(r2.id, register="kkt1", fn_serial="9999078900000001", fd_before=1)
    ledger.record_done(r2.id, dataclasses.replace(doc(2, "S2"), marking_results=marks[:1]), attempt_id=None)
    ledger.record_intent(r3.id, register="kkt1", fn_serial="9999078900000001", fd_before=2)
    ledger.record_done(r3.id, doc(3, "S3"), attempt_id=None)
    got = [(m["line"], m["code"], m["result"]) for m in ledger.marks_of(r1.id)]
    assert got == [(0, "MDEwNDYwMzk4ODAwMDAwMTIxNUpyN1lwcTJaMVg5QR05MUVFMTAdOTJBYkMvKz1BYkMvKz1BYkMvKz1BYkMv"
                       "Kz1BYkMvKz1BYkMvKz1BYkMvKz16eg==", 0x0F),
                   (2, "MDEwNDY1MDE5NDQ5NjE2MzIxNSdvUTVZSh05M2RHVno=", 0x05)]
    assert [m["result"] for m in ledger.marks_of(r2.id)] == [0x0F] and ledger.marks_of(r3.id) == []
    assert all(r.state is State.DONE for r in ledger.list_receipts())
