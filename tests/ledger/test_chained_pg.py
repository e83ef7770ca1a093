"""PostgreSQL's chained hot-path statements (worker/ledger/chained.py) against the per-statement path.

Each scenario is played twice on the same real PostgreSQL database, wiped in between (identities
restarted, one fixed clock): once per statement (``CHAINED_ON_POSTGRES = False``, what SQLite runs),
once chained. What the call returned (the Claim's record with its Python types, the attempt id, the
exception and its message) and every row of receipts, attempts, register_watermarks and
register_documents must be equal. A guard that fails must leave the rows exactly as before the call —
the call runs through the group commit, which COMMITS the batch after a request's guard error, so a
write left behind by a failed guard would show here.

Mutation-checked: removing from chained.py the fence condition of ``done`` / of the bare claim's head,
the ``EXISTS (done)`` of the attempt or of the watermark, the watermark's ``last_fd = fd_before`` or
``b_advance``, the head's gate on ``moved``, its ``head_unclaimed IS false`` or the ``just_done``
prerequisite exception each fails a scenario below.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from kkt_drivers.receipt import Operation
from tests.ledger.test_ledger import doc, entry, ingest, receipt, shop_row
from worker.ledger import base, documents, ingest_writes, lane_writes, migrate
from worker.ledger.leases import Fence
from worker.ledger.schema import attempts, receipts, register_documents, register_watermarks
from worker.ledger.states import State
from worker.ledger.store import IngestEntry, Ledger, PlannedRow

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, 123456)
FN = doc(1, "x").fn_serial
TABLES = (receipts, attempts, register_watermarks, register_documents)


@pytest.fixture
def pg(postgres_url: sa.URL) -> Iterator[Ledger]:
    led = Ledger(postgres_url.render_as_string(hide_password=False))
    migrate.upgrade(led.engine)
    led.enable_group_commit()   # as in the worker: a request's guard error does not roll its batch back
    yield led
    led.disable_group_commit()
    led.dispose()


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (base, documents, ingest_writes, lane_writes):   # every timestamp the scenarios write
        monkeypatch.setattr(module, "utcnow", lambda: NOW)


def wipe(ledger: Ledger) -> None:
    names = ", ".join(t for t in sa.inspect(ledger.engine).get_table_names() if t != "alembic_version")
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


def rows(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    with ledger.engine.connect() as conn:
        return {t.name: [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for t in TABLES}


def by_tag(ledger: Ledger, tag: str) -> int:
    return next(r.id for r in ledger.list_receipts() if r.tag == tag)


@dataclasses.dataclass
class Lane:
    """What a scenario's setup leaves: the lane's fence and S1 claimed (its attempt) at FD 10."""

    fence: Fence
    attempt: int
    s1: int


def backlog(ledger: Ledger, entries: list[IngestEntry] | None = None, watermark: int = 10) -> Lane:
    """S1..S3 queued (or *entries*), the lease taken, the watermark at *watermark*, S1 claimed at FD 10."""
    entries = entries if entries is not None else [entry(1), entry(2), entry(3)]
    ingest(ledger, entries, cursor=len(entries), now=NOW - dt.timedelta(minutes=1))
    fence = ledger.acquire_lease("kkt1", "test@host", 60)
    ledger.set_watermark("kkt1", FN, watermark, fence=fence)
    claim = ledger.claim("kkt1", "default", fn_serial=FN, fd_before=10, now=NOW, fence=fence)
    assert claim is not None and claim.record.tag == "S1"
    return Lane(fence, claim.attempt_id, claim.record.id)


def done_and_claim(ledger: Ledger, lane: Lane, fd: int = 11, fd_before: int = 10,
                   fence: Fence | None = None, receipt_id: int | None = None) -> Any:
    return ledger.record_done_and_claim(receipt_id or lane.s1, doc(fd, "S1"), attempt_id=lane.attempt,
                                        fence=fence or lane.fence, register="kkt1", fd_before=fd_before,
                                        group="default")


def play(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, chained: bool, setup: Callable[[Ledger], Any],
         act: Callable[[Ledger, Any], Any]) -> tuple[Any, dict, dict]:
    """(what *act* returned or raised, the rows before it, the rows after it), on a wiped ledger."""
    monkeypatch.setattr(lane_writes, "CHAINED_ON_POSTGRES", chained)
    wipe(ledger)
    state = setup(ledger)
    before = rows(ledger)
    try:
        out: Any = act(ledger, state)
    except Exception as exc:   # the exception's type and message are part of what must be equal
        out = (type(exc).__name__, str(exc))
    return out, before, rows(ledger)


def differences(a: dict, b: dict) -> list[tuple[str, int, str, Any, Any]]:
    """(table, row, column, value in a, value in b) wherever the snapshots differ (readable failures)."""
    out = []
    for table in a:
        if len(a[table]) != len(b[table]):
            out.append((table, -1, "rows", len(a[table]), len(b[table])))
        for i, (ra, rb) in enumerate(zip(a[table], b[table])):
            out += [(table, i, k, ra[k], rb[k]) for k in ra if ra[k] != rb[k]]
    return out


def same_both_ways(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, setup: Callable[[Ledger], Any],
                   act: Callable[[Ledger, Any], Any]) -> tuple[Any, dict, dict]:
    old = play(ledger, monkeypatch, False, setup, act)
    new = play(ledger, monkeypatch, True, setup, act)
    assert new[0] == old[0]           # the return value: Claim(record, attempt id) or the exception
    assert differences(new[1], old[1]) == []   # same starting rows (the setup is deterministic)
    assert differences(new[2], old[2]) == []   # same rows written
    return new


def test_done_and_claim_returns_the_same_claim_and_writes_the_same_rows(
        pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """S1 done at FD 11 (watermark 10 → 11), S2 claimed with fd_before 11 and an open attempt."""
    out, before, after = same_both_ways(pg, monkeypatch, backlog, done_and_claim)
    moved, claim = out
    assert moved is True and claim.record.tag == "S2" and claim.record.state is State.SENDING
    assert claim.record.fd_before == 11 and type(claim.record.total).__name__ == "Decimal"
    assert [w["last_fd"] for w in after["register_watermarks"]] == [11]
    assert len(after["attempts"]) == len(before["attempts"]) + 1


def test_an_empty_queue_behind_the_outcome_claims_nothing(pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    out, _, after = same_both_ways(pg, monkeypatch, lambda led: backlog(led, [entry(1)]), done_and_claim)
    assert out == (True, None)
    assert [r["state"] for r in after["receipts"]] == ["done"]


@pytest.mark.parametrize("stale", ["epoch", "holder"])
def test_a_stale_fence_writes_nothing(pg: Ledger, monkeypatch: pytest.MonkeyPatch, stale: str) -> None:
    """LeaseLost with the same message; the batch was committed, and nothing of this request is in it."""
    def act(led: Ledger, lane: Lane) -> Any:
        fence = (dataclasses.replace(lane.fence, epoch=lane.fence.epoch + 1) if stale == "epoch"
                 else dataclasses.replace(lane.fence, holder="someone@else"))
        return done_and_claim(led, lane, fence=fence)
    out, before, after = same_both_ways(pg, monkeypatch, backlog, act)
    assert out[0] == "LeaseLost" and after == before


def test_a_receipt_no_longer_sending_writes_nothing(pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """S1 went back to queued (a retry) before its outcome: StateConflict; its attempt, the watermark and
    the queue are untouched."""
    def setup(led: Ledger) -> Lane:
        lane = backlog(led)
        led.record_retry(lane.s1, attempt_id=lane.attempt, new=State.QUEUED, attempts=1, next_attempt_at=NOW,
                         error="link down", error_class="transient", fence=lane.fence)
        return lane
    out, before, after = same_both_ways(pg, monkeypatch, setup, done_and_claim)
    assert out[0] == "StateConflict" and after == before


@pytest.mark.parametrize("where", ["watermark_elsewhere", "document_not_next"])
def test_no_claim_when_the_watermark_did_not_move(pg: Ledger, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """The watermark stands at 9, not at fd_before 10 (or the document is not fd_before + 1): S1 is done,
    the watermark stays, nothing is claimed."""
    setup = (lambda led: backlog(led, watermark=9)) if where == "watermark_elsewhere" else backlog
    fd = 11 if where == "watermark_elsewhere" else 12
    out, _, after = same_both_ways(pg, monkeypatch, setup, lambda led, lane: done_and_claim(led, lane, fd=fd))
    assert out == (False, None)
    assert [r["state"] for r in after["receipts"]] == ["done", "queued", "queued"]


def test_a_head_whose_tag_a_register_holds_ends_the_outcome_write_and_the_next_claim_adopts_it(
        pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """S2's tag is an "unclaimed" document (the ledger was restored). The outcome write records S1 and
    claims nothing — adopting is more than its one statement; the lane's next claim adopts S2, claims S3."""
    def setup(led: Ledger) -> Lane:
        lane = backlog(led)
        d = doc(5, "S2")
        with led.engine.begin() as conn:
            conn.execute(sa.insert(register_documents).values(
                fn_serial=d.fn_serial, fd_number=d.fd_number, register="kkt0", kind="receipt", tag="S2",
                operation=int(d.operation), total=d.total, fiscal_sign=d.fiscal_sign, shift_number=d.shift_number,
                receipt_number=d.receipt_number, issued_at=d.issued_at, disposition="unclaimed",
                examined_at=NOW))
        return lane
    def act(led: Ledger, lane: Lane) -> Any:
        outcome = done_and_claim(led, lane)
        states = [r["state"] for r in rows(led)["receipts"]]
        nxt = led.claim("kkt1", "default", fn_serial=FN, fd_before=11, now=NOW, fence=lane.fence)
        return outcome, states, nxt

    out, _, after = same_both_ways(pg, monkeypatch, setup, act)
    assert out[0] == (True, None) and out[1] == ["done", "queued", "queued"]
    assert out[2].record.tag == "S3"
    assert [r["state"] for r in after["receipts"]] == ["done", "done", "sending"]
    assert [d["disposition"] for d in after["register_documents"]] == ["adopted"]


def test_a_head_locked_by_another_lane_is_skipped(pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another lane's transaction holds S2 locked: the claim takes S3 (SKIP LOCKED), without waiting."""
    held: list[sa.Connection] = []

    def act(led: Ledger, lane: Lane) -> Any:
        other = led.engine.connect()
        held.append(other)
        other.begin()
        other.execute(sa.select(receipts.c.id).where(receipts.c.tag == "S2").with_for_update())
        result: list[Any] = []
        # a claim that waited for the lock instead of skipping would hang here: fail, do not hang
        t = threading.Thread(target=lambda: result.append(done_and_claim(led, lane)), daemon=True)
        t.start()
        t.join(10)
        other.rollback()
        other.close()
        t.join(10)
        assert result, "the claim waited for the locked head"
        return result[0]
    out, _, after = same_both_ways(pg, monkeypatch, backlog, act)
    assert out[1].record.tag == "S3"
    assert [r["state"] for r in after["receipts"]] == ["done", "queued", "sending"]


def test_a_refund_waiting_for_the_receipt_just_done_is_claimed_with_it(
        pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """R2 waits for S1: in one statement S1's done is not visible to the head query (one snapshot), yet
    R2 is claimed at once, as by the per-statement path."""
    refund = IngestEntry(dataclasses.replace(shop_row(2), kind="refund", refund_of=1),
                         (PlannedRow("refund", 1, "R2", receipt=dataclasses.replace(
                             receipt("R2"), operation=Operation.SALE_REFUND)),))
    out, _, _ = same_both_ways(pg, monkeypatch, lambda led: backlog(led, [entry(1), refund]), done_and_claim)
    assert out[1].record.tag == "R2"


def test_record_done_alone(pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outcome without a claim: same rows, same "moved"; a stale fence writes nothing."""
    def act(led: Ledger, lane: Lane) -> Any:
        return led.record_done(lane.s1, doc(11, "S1"), attempt_id=lane.attempt, fence=lane.fence,
                               register="kkt1", fd_before=10)
    out, _, after = same_both_ways(pg, monkeypatch, backlog, act)
    assert out is True and [r["state"] for r in after["receipts"]] == ["done", "queued", "queued"]

    def stale(led: Ledger, lane: Lane) -> Any:
        return led.record_done(lane.s1, doc(11, "S1"), attempt_id=lane.attempt,
                               fence=dataclasses.replace(lane.fence, epoch=9), register="kkt1", fd_before=10)
    out, before, after = same_both_ways(pg, monkeypatch, backlog, stale)
    assert out[0] == "LeaseLost" and after == before


def test_claim_alone(pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim after an idle: same record and attempt; a stale fence claims nothing; an empty queue None."""
    def claim(led: Ledger, lane: Lane, fence: Fence | None = None) -> Any:
        return led.claim("kkt1", "default", fn_serial=FN, fd_before=10, now=NOW, fence=fence or lane.fence)
    out, _, after = same_both_ways(pg, monkeypatch, backlog, claim)
    assert out.record.tag == "S2" and [r["state"] for r in after["receipts"]] == ["sending", "sending", "queued"]
    out, before, after = same_both_ways(
        pg, monkeypatch, backlog, lambda led, lane: claim(led, lane, dataclasses.replace(lane.fence, epoch=9)))
    assert out[0] == "LeaseLost" and after == before
    out, _, _ = same_both_ways(pg, monkeypatch, lambda led: backlog(led, [entry(1)]), claim)
    assert out is None


def test_a_receipt_on_a_backlog_is_one_statement_chained_and_seven_per_statement(
        pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the chaining is for: outcome + next claim = 1 statement on PostgreSQL (was 7)."""
    from worker.ledger import fastpath
    real = fastpath.run
    counts = []
    for chained in (False, True):
        monkeypatch.setattr(lane_writes, "CHAINED_ON_POSTGRES", chained)
        wipe(pg)
        lane = backlog(pg)
        calls: list[str] = []
        monkeypatch.setattr(fastpath, "run", lambda conn, stmt, params: calls.append("x") or real(conn, stmt, params))
        done_and_claim(pg, lane)
        monkeypatch.setattr(fastpath, "run", real)
        counts.append(len(calls))
    assert counts == [7, 1]


def test_the_chained_statement_is_converted_once_not_per_receipt(pg: Ledger) -> None:
    """psycopg caches a statement's placeholder conversion only up to a length our chained statement is
    over (~5.5 KB; parsing it again cost ~0.2 ms per receipt): a PostgreSQL ledger's engine raises that
    limit, and a second receipt's statement comes from the cache (fails if a psycopg release renames it)."""
    from psycopg import _queries
    from worker.ledger import chained, fastpath

    sql = fastpath.prepared(chained.DONE_AND_CLAIM, pg.engine.dialect).sql
    assert len(sql) > 4096   # why this test exists: over psycopg's own limit
    lane = backlog(pg)
    moved, nxt = done_and_claim(pg, lane)   # converted (and cached) at the first receipt
    assert moved and nxt is not None
    hits = _queries._query2pg.cache_info().hits
    pg.record_done_and_claim(nxt.record.id, doc(12, nxt.record.tag), attempt_id=nxt.attempt_id, fence=lane.fence,
                             register="kkt1", fd_before=11, group="default")
    assert _queries._query2pg.cache_info().hits > hits


def test_the_outcome_and_the_claim_reach_their_rows_by_primary_key_with_statistics_older_than_the_backlog(
        pg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statistics say nothing is queued or sending (ANALYZE ran while every receipt was done; then
    3 000 were queued, as on a ledger that grew a backlog faster than autovacuum analyzes it). With an
    indexable state guard the planner reached the rows through ix_receipts_claim / ix_receipts_state_next,
    a scan of every queued row (5.6 ms per receipt at 20 000, auto_explain in bench.pool); the done's and
    the claim's UPDATE must take the primary key whatever the statistics say (chained._state_guard).
    The plan is EXPLAINed (not run) inside the receipt's own transaction."""
    from worker.ledger import chained, fastpath

    monkeypatch.setattr(lane_writes, "CHAINED_ON_POSTGRES", True)
    ingest(pg, [entry(i) for i in range(1, 201)], cursor=200, now=NOW - dt.timedelta(minutes=2))
    with pg.engine.begin() as conn:   # the statistics of a ledger whose receipts were all done
        conn.exec_driver_sql("UPDATE receipts SET state = 'done'")
        conn.exec_driver_sql("ANALYZE receipts")
    ingest(pg, [entry(i) for i in range(201, 3201)], cursor=3200, expected=200,
           now=NOW - dt.timedelta(minutes=1))
    fence = pg.acquire_lease("kkt1", "test@host", 60)
    pg.set_watermark("kkt1", FN, 10, fence=fence)
    first = pg.claim("kkt1", "default", fn_serial=FN, fd_before=10, now=NOW, fence=fence)
    assert first is not None and first.record.tag == "S201"
    plans: list[str] = []
    real = fastpath.run

    def explain_then_run(conn: Any, stmt: Any, params: dict[str, Any]) -> Any:
        if stmt is chained.DONE_AND_CLAIM:
            p = fastpath.prepared(stmt, conn.dialect)
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute("EXPLAIN " + p.sql, p.parameters(params))
            plans.append("\n".join(r[0] for r in cursor.fetchall()))
        return real(conn, stmt, params)

    monkeypatch.setattr(fastpath, "run", explain_then_run)
    moved, nxt = pg.record_done_and_claim(first.record.id, doc(11, "S201"), attempt_id=first.attempt_id,
                                          fence=fence, register="kkt1", fd_before=10, group="default")
    assert moved and nxt is not None and nxt.record.tag == "S202"
    [plan] = plans
    done = plan[plan.index("Update on receipts "):plan.index("Update on attempts")]   # S201 sending → done
    claim = plan[plan.index("Update on receipts receipts_"):plan.index("Insert on attempts")]   # S202 claimed
    for update in (done, claim):
        assert "Index Scan using pk_receipts" in update, plan
        assert "ix_receipts_state_next" not in update and "ix_receipts_claim" not in update, plan
