"""The pool's claim and group commit under fencing: a lane whose lease was taken over writes nothing
and fails alone in a shared transaction; a claim adopts a head whose tag a register already holds;
an outcome that follows the watermark moves it. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import insert

from tests.ledger.test_ledger import doc, entry, ingest
from worker.errors import LeaseLost
from worker.ledger.schema import register_documents
from worker.ledger.states import State
from worker.ledger.store import Fence, Ledger, utcnow

OTHER_HOST = "worker@elsewhere:{}:1"   # a holder on another host: only expiry or release frees its lease


def stale_and_live(ledger: Ledger) -> tuple[Fence, Fence]:
    """kkt1's lease taken over (the first fence is stale), kkt2's lease held."""
    old = ledger.acquire_lease("kkt1", OTHER_HOST.format(1), ttl_s=30)
    ledger.release_lease(old)
    ledger.acquire_lease("kkt1", OTHER_HOST.format(2), ttl_s=30)   # epoch 2: `old` is stale
    return old, ledger.acquire_lease("kkt2", OTHER_HOST.format(1), ttl_s=30)


def test_a_stale_lane_fails_alone_in_a_shared_batch(ledger: Ledger) -> None:
    """Given kkt1's lease was taken over and kkt2 holds its own, when both lanes' claims land in ONE
    group-commit transaction, then kkt1 gets LeaseLost and wrote nothing, and kkt2's claim commits."""
    ingest(ledger, [entry(1), entry(2)], cursor=2)
    stale, live = stale_and_live(ledger)
    ledger.enable_group_commit()
    try:
        gc = ledger._group_commit
        assert gc is not None
        gate, holding = threading.Event(), threading.Event()

        def hold(conn: object) -> None:   # occupies the writer until both claims are queued behind it
            holding.set()
            gate.wait(10)

        results: dict[str, object] = {}

        def submit(name: str, fn) -> None:  # type: ignore[no-untyped-def]
            try:
                results[name] = fn()
            except Exception as exc:  # noqa: BLE001 — the test inspects what each lane got
                results[name] = exc

        threads = [threading.Thread(target=submit, args=("hold", lambda: gc.submit(hold)))]
        threads[0].start()
        assert holding.wait(10)
        for name, fence in (("kkt1", stale), ("kkt2", live)):
            threads.append(threading.Thread(target=submit, args=(name, lambda name=name, fence=fence: ledger.claim(
                name, "default", fn_serial="FN", fd_before=1, fence=fence))))
            threads[-1].start()
        deadline = time.monotonic() + 10
        while gc._q.qsize() < 2 and time.monotonic() < deadline:   # both wait for the next batch
            time.sleep(0.01)
        batches = gc.batches
        gate.set()
        for t in threads:
            t.join(10)
        assert gc.batches == batches + 2   # the held batch, then ONE batch with both claims
    finally:
        ledger.disable_group_commit()
    assert isinstance(results["kkt1"], LeaseLost)
    claim = results["kkt2"]
    assert not isinstance(claim, Exception) and claim is not None
    rows = {r.tag: r for r in ledger.list_receipts()}
    sending = [r for r in rows.values() if r.state is State.SENDING]
    assert [r.register for r in sending] == ["kkt2"]                 # kkt2's claim committed
    assert [r.state for r in rows.values()].count(State.QUEUED) == 1  # kkt1 claimed nothing
    assert all(a["register"] == "kkt2" for r in rows.values() for a in ledger.attempts_of(r.id))


@pytest.mark.parametrize("group_commit", [False, True], ids=["own-commit", "group-commit"])
def test_claim_adopts_a_head_whose_tag_a_register_holds(ledger: Ledger, group_commit: bool) -> None:
    """Given S1's tag was examined on a register as "unclaimed" (the ledger did not know it then), when
    a lane claims, then S1 is adopted (done with that FD, never sent) and the lane gets S2."""
    ingest(ledger, [entry(1), entry(2)], cursor=2)
    fence = ledger.acquire_lease("kkt1", OTHER_HOST.format(1), ttl_s=30)
    d = doc(41, "S1")
    with ledger.write() as conn:
        conn.execute(insert(register_documents).values(
            fn_serial=d.fn_serial, fd_number=d.fd_number, register="kkt9", kind=d.kind.value, tag=d.tag,
            operation=int(d.operation), total=d.total, fiscal_sign=d.fiscal_sign, shift_number=d.shift_number,
            receipt_number=d.receipt_number, issued_at=d.issued_at, disposition="unclaimed", examined_at=utcnow()))
    if group_commit:
        ledger.enable_group_commit()
    try:
        claim = ledger.claim("kkt1", "default", fn_serial=d.fn_serial, fd_before=50, fence=fence)
    finally:
        ledger.disable_group_commit()
    assert claim is not None and claim.record.tag == "S2"
    s1 = {r.tag: r for r in ledger.list_receipts()}["S1"]
    assert s1.state is State.DONE and s1.fd_number == 41
    assert [a["action"] for a in ledger.attempts_of(s1.id)] == ["adopt"]


@pytest.mark.parametrize("group_commit", [False, True], ids=["own-commit", "group-commit"])
def test_done_right_after_the_watermark_moves_it_and_a_stale_done_writes_nothing(
        ledger: Ledger, group_commit: bool) -> None:
    """Given the watermark at FD 50, when the lane records S1 done as FD 51, the watermark moves to 51 in
    the same write; a lane whose lease was taken over cannot record S2 done (LeaseLost)."""
    ingest(ledger, [entry(1), entry(2)], cursor=2)
    stale, live = stale_and_live(ledger)
    fn = doc(1, "S1").fn_serial
    ledger.set_watermark("kkt2", fn, 50, fence=live)
    if group_commit:
        ledger.enable_group_commit()
    try:
        first = ledger.claim("kkt2", "default", fn_serial=fn, fd_before=50, fence=live)
        assert first is not None
        ledger.record_done(first.record.id, doc(51, first.record.tag), attempt_id=first.attempt_id, fence=live,
                           register="kkt2", fd_before=50)
        second = ledger.claim("kkt2", "default", fn_serial=fn, fd_before=51, fence=live)
        assert second is not None
        with pytest.raises(LeaseLost):
            ledger.record_done(second.record.id, doc(52, second.record.tag), attempt_id=second.attempt_id,
                               fence=stale, register="kkt1", fd_before=51)
    finally:
        ledger.disable_group_commit()
    assert ledger.watermark("kkt2", fn) == 51
    states = {r.tag: r.state for r in ledger.list_receipts()}
    assert states == {"S1": State.DONE, "S2": State.SENDING}


def test_examined_documents_are_sorted_into_service_foreign_and_unclaimed(ledger: Ledger) -> None:
    """A shift opening (the lane's own) is a service document, an untagged sale is foreign, a tag of ours
    whose payment the ledger lacks is unclaimed: status must not call our own shift report foreign."""
    import dataclasses

    from kkt_drivers.receipt import DocumentKind

    opening = dataclasses.replace(doc(1, ""), kind=DocumentKind.OPEN_SHIFT, tag=None, operation=None, total=None)
    examined = ledger.record_examined("kkt1", "9999078900000001",
                                      [opening, doc(2, ""), doc(3, "S99")], 3, fence=None)
    assert [(e.fd_number, e.disposition) for e in examined] == [(1, "service"), (2, "foreign"), (3, "unclaimed")]
