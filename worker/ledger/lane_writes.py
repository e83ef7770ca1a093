"""What the lanes read and write: due receipts, intent, outcome, attempts, the lanes table."""
from __future__ import annotations

import base64
import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import (Boolean, Connection, DateTime, Integer, String, bindparam, case, func, insert, null, select,
                        update)

from kkt_drivers.receipt import FiscalDocument
from worker.errors import StateConflict
from worker.ledger.documents import DocumentWrites
from worker.ledger.leases import Fence
from worker.ledger import chained, fastpath
from worker.ledger.due_queue import HEAD_UNCLAIMED, QUEUE, head_select, prerequisites_done
from worker.ledger.records import RECORD_COLS, ReceiptRecord, record_from_mapping, record_from_row, utcnow
from worker.ledger.schema import (
    ERROR_MAX_CHARS,
    attempts,
    lanes,
    payments,
    receipt_marks,
    receipts,
    register_documents,
    register_watermarks,
)
from worker.ledger.states import State, check_transition

#: receipts adopted (their tag already on a register) that one claim may pass over before it gives up
CLAIM_MAX_ADOPTIONS = 16
#: PostgreSQL runs the hot path as chained statements (:mod:`worker.ledger.chained`); False: the
#: per-statement path SQLite uses (tests/ledger/test_chained_pg.py compares the two)
CHAINED_ON_POSTGRES = True


def _chained(conn: Connection) -> bool:
    return CHAINED_ON_POSTGRES and conn.dialect.name == "postgresql"


class Claim(NamedTuple):
    """A receipt a lane claimed (now "sending" with its intent) and the attempt to finish."""

    record: ReceiptRecord
    attempt_id: int


class LaneWrites(DocumentWrites):
    """Claiming, the write-ahead intent, outcomes and heartbeats.

    Every write for a register takes the lane's *fence* and checks it in the same transaction
    (:meth:`~worker.ledger.leases.LeaseWrites.check_fence`): LeaseLost when the epoch moved on.
    """

    def due(self, now: dt.datetime, limit: int = 10) -> list[ReceiptRecord]:
        """Queued receipts whose time has come and whose prerequisites are done, oldest first."""
        with self.read() as conn:
            rows = conn.execute(self._select_records().where(
                receipts.c.state == State.QUEUED.value, receipts.c.next_attempt_at <= now, prerequisites_done())
                .order_by(receipts.c.next_attempt_at, receipts.c.id).limit(limit))
            return [record_from_row(r) for r in rows]

    def sending(self, register: str | None = None) -> list[ReceiptRecord]:
        """Receipts whose outcome is not known (left "sending"), optionally for one register."""
        if register is not None:   # every lane at start: prebuilt
            with self.reading() as tx:
                res = fastpath.run(tx, _SENDING_ON, {"b_register": register})
            return [record_from_mapping(dict(zip(res.keys, r))) for r in res.rows]
        q = self._select_records().where(receipts.c.state == State.SENDING.value)
        with self.read() as conn:
            return [record_from_row(r) for r in conn.execute(q.order_by(receipts.c.id))]

    def get(self, receipt_id: int) -> ReceiptRecord:
        """One receipt by ledger id."""
        with self.read() as conn:
            return record_from_row(conn.execute(self._select_records().where(receipts.c.id == receipt_id)).one())

    def sale_done(self, source_id: int) -> bool:
        """Whether every receipt of shop row *source_id* is done (refunds wait for their sale)."""
        return self.stage_done(source_id, None)

    def stage_done(self, source_id: int, stage: str | None, *, below_part: int | None = None) -> bool:
        """Whether shop row *source_id* has receipts of *stage* (any stage for None; parts below
        *below_part*) and all are done.

        Settlements wait for their prepayment, refunds of a prepayment for it, corrections for the
        corrections before them.
        """
        q = (select(receipts.c.state).select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id))
             .where(payments.c.source_id == source_id))
        if stage is not None:
            q = q.where(receipts.c.stage == stage)
        if below_part is not None:
            q = q.where(receipts.c.part < below_part)
        with self.read() as conn:
            states = list(conn.execute(q).scalars())
        return bool(states) and all(s == State.DONE.value for s in states)

    def corrections_link(self, receipt_id: int) -> tuple[str | None, int | None]:
        """(tag, fiscal sign) of the receipt a correction receipt reverses or replaces."""
        with self.read() as conn:
            row = conn.execute(select(receipts.c.corrects_tag, receipts.c.corrects_fiscal_sign)
                               .where(receipts.c.id == receipt_id)).one()
        return row[0], row[1]

    def claim(self, register: str, group: str, *, fn_serial: str, fd_before: int,
              now: dt.datetime | None = None, fence: Fence | None = None) -> Claim | None:
        """Take the head of *group*'s due queue for *register*: claim and intent in ONE guarded write.

        queued → sending with the register's position (``fn_serial``, ``fd_before``) and an attempts row,
        committed durably before the register is called. Receipts whose prerequisites are not done
        (``waits_for``) are not due and never block the head.

        Why no two lanes ever take the same receipt: on PostgreSQL the candidate row is locked with
        ``FOR UPDATE SKIP LOCKED`` (a competing lane skips it instead of waiting), and on SQLite the
        transaction is ``BEGIN IMMEDIATE`` — the single writer lock is held from the SELECT to the
        UPDATE, so no other lane can even read-for-claim in between. The UPDATE is still guarded by
        ``state = 'queued'`` and must hit one row (belt and braces). Returns None when nothing is due.

        Fenced: *fence* (the lane's lease) is checked first in the same transaction — LeaseLost, and
        nothing written, when the epoch moved on. A head whose tag a register already holds (an
        "unclaimed" examined document: the ledger was lost or restored) is adopted in this write,
        never sent, and the next head is taken (:meth:`DocumentWrites.claim_for`).
        """
        now = now or utcnow()

        def claim_in(conn: Connection) -> Claim | None:
            if _chained(conn):   # fence, head, claim, attempt: one statement
                row = fastpath.run(conn, chained.CLAIM, {
                    **chained.fence_params(fence), **_claim_params(register, group, fn_serial, fd_before, now)
                }).mapping()
                chained.check_guards(row, fence, None)   # the statement wrote nothing if the fence is stale
                return self._claim_head(conn, register, group, fn_serial=fn_serial, fd_before=fd_before, now=now,
                                        first=chained.split_head(row))
            # guards first: LeaseLost / StateConflict leave nothing written (group commit relies on it)
            self.check_fence(conn, fence)
            return self._claim_head(conn, register, group, fn_serial=fn_serial, fd_before=fd_before, now=now)

        return self.batched(claim_in)

    def _claim_head(self, conn: Connection, register: str, group: str, *, fn_serial: str, fd_before: int,
                    now: dt.datetime, first: tuple[dict[str, Any] | None, int | None] | None = None,
                    adopt: bool = True) -> Claim | None:
        """The body of :meth:`claim` inside a write transaction whose fence was already checked.

        StateConflict only before anything was written (the head moved under us); None when nothing is
        due (adoptions written on the way are kept). *first*: the head (and its attempt id, None if its
        claim missed or it is "unclaimed") that a chained PostgreSQL statement already took
        (:func:`chained.split_head`); on PostgreSQL every further head is taken and claimed by
        :data:`chained.CLAIM` too, on SQLite by the three statements below. *adopt* false: a head to adopt
        ends the claim (None) with nothing written; the caller's next claim adopts it.
        """
        check_transition(State.QUEUED, State.SENDING)
        pg = _chained(conn)
        for adopted in range(CLAIM_MAX_ADOPTIONS + 1):
            attempt_id: int | None = None
            if first is not None:
                (head, attempt_id), first = first, None
            elif pg:   # the fence was checked in this transaction: b_fenced false
                head, attempt_id = chained.split_head(fastpath.run(conn, chained.CLAIM, {
                    **chained.fence_params(None), **_claim_params(register, group, fn_serial, fd_before, now)
                }).mapping())
            else:
                head = fastpath.run(conn, _CLAIM_HEAD, {"b_group": group, "b_now": now}).mapping()
            if head is None:
                return None
            # the head and whether a register already holds its tag come in one statement
            unclaimed = head.pop(HEAD_UNCLAIMED)
            receipt_id = head["id"]
            if unclaimed:   # never claimed by the chained statement either
                if not adopt or adopted == CLAIM_MAX_ADOPTIONS:
                    return None   # nothing more in this write (adoptions so far are kept); claim again
                self.claim_for(conn, receipt_id, head["tag"], now)   # adopted (or needs review): not sent
                continue
            if not pg:
                values = {"b_id": receipt_id, "b_now": now, "b_register": register, "b_fn": fn_serial,
                          "b_fd_before": fd_before}
                if fastpath.run(conn, _CLAIM_SET, values).rowcount == 1:
                    attempt_id = fastpath.run(conn, _ATTEMPT_OPEN, values).rows[0][0]
            if attempt_id is None:   # the claim's UPDATE missed (the chained INSERT then inserted nothing)
                if adopted:
                    return None   # keep the adoptions already written in this transaction
                raise StateConflict(f"receipt {receipt_id}: expected state queued, it moved")
            # the record as the claim left it (built once: dataclasses.replace cost as much as a statement)
            head.update(state=State.SENDING.value, register=register, fn_serial=fn_serial, fd_before=fd_before)
            return Claim(record_from_mapping(head), attempt_id)
        return None

    def next_due_at(self, group: str) -> dt.datetime | None:
        """When the earliest queued receipt of *group* becomes due (None: nothing queued)."""
        with self.reading() as tx:
            return fastpath.run(tx, _NEXT_DUE, {"b_group": group}).rows[0][0]

    def expedite(self, receipt_id: int, when: dt.datetime | None = None) -> None:
        """Make a queued receipt due now: a register failed it certainly unsent and another may take it."""
        with self.write() as conn:
            conn.execute(update(receipts).where(receipts.c.id == receipt_id, receipts.c.state == State.QUEUED.value)
                         .values(next_attempt_at=when or utcnow()))

    def record_intent(self, receipt_id: int, *, register: str, fn_serial: str, fd_before: int,
                      fence: Fence | None = None) -> int:
        """queued → sending with the register's position; committed durably BEFORE the register call.

        Returns the attempt id. StateConflict if the receipt is no longer queued — or if a register
        already holds a document with its tag (it is adopted instead: never printed twice).
        """
        now = utcnow()
        with self.write() as conn:
            self.check_fence(conn, fence)
            tag = conn.execute(select(receipts.c.tag).where(receipts.c.id == receipt_id)).scalar_one()
            if conn.execute(select(register_documents.c.fd_number).where(
                    register_documents.c.tag == tag, register_documents.c.disposition == "unclaimed")).first():
                self.claim_for(conn, receipt_id, tag, now)   # committed with this transaction
                adopted = True
            else:
                adopted = False
                self._cas(conn, receipt_id, State.QUEUED, State.SENDING, register=register, fn_serial=fn_serial,
                          fd_before=fd_before, intent_at=now)
                attempt_id = conn.execute(insert(attempts).values(
                    receipt_id=receipt_id, register=register, action="send", started_at=now, fd_before=fd_before,
                )).inserted_primary_key[0]
        if adopted:
            raise StateConflict(f"receipt {tag} is already on a register: adopted, not sent")
        return attempt_id

    def record_done(self, receipt_id: int, doc: FiscalDocument, *, attempt_id: int | None,
                    expected: State = State.SENDING, outcome: str = "done", fence: Fence | None = None,
                    register: str | None = None, fd_before: int | None = None) -> bool:
        """sending → done with the document's requisites.

        With *register* and *fd_before*: if the watermark stood at *fd_before* (nothing unexamined before
        our document), it moves to the document's number in the same transaction. Returns whether it
        moved (the lane then knows the ledger has accounted for everything up to this document).
        """
        now = utcnow()
        if expected is State.SENDING and outcome == "done" and attempt_id is not None:
            def done_in(conn: Connection) -> bool:   # the hot path: prebuilt statements
                return self._done_in(conn, receipt_id, doc, attempt_id, fence, register, fd_before, now)
            return bool(self.batched(done_in))
        with self.write() as conn:
            self.check_fence(conn, fence)
            self._cas(conn, receipt_id, expected, State.DONE, fd_number=doc.fd_number, fiscal_sign=doc.fiscal_sign,
                      fn_serial=doc.fn_serial, shift_number=doc.shift_number, receipt_number=doc.receipt_number,
                      fiscal_at=doc.issued_at, qr=doc.qr, error_class=None)
            moved = self._advance_watermark(conn, register, fd_before, doc, now)
            self._finish_attempt(conn, attempt_id, now, outcome, fd_number=doc.fd_number)
            _write_marks(conn, receipt_id, doc, now)
        return moved

    def record_done_and_claim(self, receipt_id: int, doc: FiscalDocument, *, attempt_id: int, fence: Fence | None,
                              register: str, fd_before: int, group: str) -> tuple[bool, Claim | None]:
        """The outcome of one receipt and the claim of the next, in ONE durable write: (moved, claim).

        A lane sending a backlog would otherwise commit twice per receipt (outcome, then the next
        intent). Same guards as :meth:`record_done`; the claim is made only when the watermark moved to
        this document (the register then holds nothing the ledger has not accounted for, so the next
        receipt's ``fd_before`` is this document's number) and is simply not made (None) when the queue
        is empty, its head moved, or its head is to be adopted (a register holds its tag: rare, and left to
        the lane's next :meth:`claim`). Either both are committed or neither: a crash before the commit
        leaves this receipt "sending" (recovery finds it by its tag) and the next one queued.

        On PostgreSQL all of it is one statement (:data:`chained.DONE_AND_CLAIM`), which — for a receipt
        without marked lines, written by a lane on its own — commits itself (:class:`GroupCommit`).
        """
        now = utcnow()

        def done_and_claim_in(conn: Connection) -> tuple[bool, Claim | None]:
            if _chained(conn):   # all of it in one statement
                row = fastpath.run(conn, chained.DONE_AND_CLAIM, {
                    **_done_params(receipt_id, doc, attempt_id, fence, register, fd_before, now),
                    **_claim_params(register, group, doc.fn_serial, doc.fd_number, now)}).mapping()
                chained.check_guards(row, fence, receipt_id)   # a failed guard: the statement wrote nothing
                _write_marks(conn, receipt_id, doc, now)
                if not row["moved"]:
                    return False, None
                try:   # the fence was checked by the statement, in this transaction; no second statement
                    return True, self._claim_head(conn, register, group, fn_serial=doc.fn_serial,
                                                  fd_before=doc.fd_number, now=now,
                                                  first=chained.split_head(row), adopt=False)
                except StateConflict:   # the claim wrote nothing; the outcome stands
                    return True, None
            moved = self._done_in(conn, receipt_id, doc, attempt_id, fence, register, fd_before, now)
            if not moved:
                return False, None
            try:   # the fence was checked by _done_in in this transaction
                return True, self._claim_head(conn, register, group, fn_serial=doc.fn_serial,
                                              fd_before=doc.fd_number, now=now, adopt=False)
            except StateConflict:   # raised before the claim wrote anything; the outcome stands
                return True, None

        # on PostgreSQL the chained statement is all of it, unless marked lines' results are written with it
        return self.batched(done_and_claim_in, one_statement=CHAINED_ON_POSTGRES and not doc.marking_results)

    def _done_in(self, conn: Connection, receipt_id: int, doc: FiscalDocument, attempt_id: int,
                 fence: Fence | None, register: str | None, fd_before: int | None, now: dt.datetime) -> bool:
        """sending → done inside a write transaction; True if the register's watermark moved to *doc*."""
        if _chained(conn):   # fence, done, attempt, watermark: one statement
            row = fastpath.run(conn, chained.DONE,
                               _done_params(receipt_id, doc, attempt_id, fence, register, fd_before, now)).mapping()
            chained.check_guards(row, fence, receipt_id)   # a failed guard: the statement wrote nothing
            _write_marks(conn, receipt_id, doc, now)
            return row["moved"] == 1
        # guards first (fence, then the state-guarded UPDATE): a failed guard has written nothing
        self.check_fence(conn, fence)
        if fastpath.run(conn, _DONE_SET, {
                "b_id": receipt_id, "b_now": now, "b_fd": doc.fd_number, "b_fp": doc.fiscal_sign,
                "b_fn": doc.fn_serial, "b_shift": doc.shift_number, "b_receipt_no": doc.receipt_number,
                "b_at": doc.issued_at, "b_qr": doc.qr}).rowcount != 1:
            raise StateConflict(f"receipt {receipt_id}: expected state sending, it moved")
        fastpath.run(conn, _ATTEMPT_DONE, {"b_attempt": attempt_id, "b_now": now, "b_fd": doc.fd_number})
        moved = self._advance_watermark(conn, register, fd_before, doc, now)
        _write_marks(conn, receipt_id, doc, now)
        return moved

    def record_retry(self, receipt_id: int, *, attempt_id: int | None, new: State, attempts: int,
                     next_attempt_at: dt.datetime, error: str, error_class: str,
                     outcome: str | None = None, fence: Fence | None = None) -> State:
        """sending → queued (due at *next_attempt_at*) or failed, with the attempts used, as decided by
        :func:`worker.fiscal.retry.decide`; the ledger records the decision, it does not make it."""
        if new not in (State.QUEUED, State.FAILED):
            raise ValueError(f"record_retry records a retry or a failure, not {new.value}")
        now = utcnow()
        with self.write() as conn:
            self.check_fence(conn, fence)
            self._cas(conn, receipt_id, State.SENDING, new, attempts=attempts, next_attempt_at=next_attempt_at,
                      error_class=error_class, last_error=error[:ERROR_MAX_CHARS])
            self._finish_attempt(conn, attempt_id, now, outcome or error_class, error=error)
        return new

    def record_final(self, receipt_id: int, new: State, *, attempt_id: int | None, error: str, error_class: str,
                     expected: State = State.SENDING, fence: Fence | None = None) -> None:
        """sending → rejected / needs_review / failed with the reason."""
        now = utcnow()
        with self.write() as conn:
            self.check_fence(conn, fence)
            self._cas(conn, receipt_id, expected, new, error_class=error_class, last_error=error[:ERROR_MAX_CHARS])
            self._finish_attempt(conn, attempt_id, now, new.value, error=error)

    def open_attempt(self, receipt_id: int, *, register: str, action: str, fd_before: int | None,
                     fence: Fence | None = None) -> int:
        """Start an attempts row (reconciliation); finished by the record_* call that follows."""
        with self.write() as conn:
            self.check_fence(conn, fence)
            return conn.execute(insert(attempts).values(
                receipt_id=receipt_id, register=register, action=action, started_at=utcnow(),
                fd_before=fd_before)).inserted_primary_key[0]

    def lane_heartbeats(self, rows: list[dict[str, Any]]) -> None:
        """Upsert many lanes' states in ONE transaction (the worker's batched heartbeat)."""
        now = utcnow()
        with self.write() as conn:
            for r in rows:
                self._upsert_lane(conn, r["name"], now, state=r["state"], reason=r.get("reason"),
                                  fn_serial=r.get("fn_serial"), last_fd=r.get("last_fd"),
                                  shift_open=r.get("shift_open"))

    def lane_heartbeat(self, name: str, *, state: str, reason: str | None = None, fn_serial: str | None = None,
                       last_fd: int | None = None, shift_open: bool | None = None) -> None:
        """Upsert what a lane last saw (for ``status``). Batched with the lanes' writes in the worker: a
        stopping lane writes its last state here, and 200 lanes stopping at once share commits."""
        self.batched(lambda conn: self._upsert_lane(conn, name, utcnow(), state=state, reason=reason,
                                                    fn_serial=fn_serial, last_fd=last_fd, shift_open=shift_open))

    @staticmethod
    def _upsert_lane(conn: Connection, name: str, now: dt.datetime, *, state: str, reason: str | None,
                     fn_serial: str | None, last_fd: int | None, shift_open: bool | None) -> None:
        """One prebuilt UPDATE (the worker flushes up to hundreds of lanes at a time; building a statement
        per lane was a third of a 200-register farm's CPU); INSERT only for a lane seen the first time."""
        params = {"b_name": name, "b_state": state, "b_reason": reason, "b_now": now, "b_fn": fn_serial,
                  "b_last_fd": last_fd, "b_shift_open": None if shift_open is None else int(shift_open),
                  "b_paused": state == "paused"}
        if fastpath.run(conn, _LANE_UPDATE, params).rowcount == 0:
            fastpath.run(conn, _LANE_INSERT, {**params, "b_paused_since": now if state == "paused" else None})

    def lane_health(self, name: str, *, fn_expires_on: dt.date | None, ofd_unsent: int | None,
                    ofd_oldest_at: dt.datetime | None, clock_skew_s: float | None) -> None:
        """Record the register's FN validity, OFD backlog and clock skew (read now and then, not per receipt;
        batched with the other lanes' writes: 200 lanes starting at once share commits)."""
        self.batched(lambda conn: fastpath.run(conn, _LANE_HEALTH, {
            "b_name": name, "b_fn_expires_on": fn_expires_on, "b_ofd_unsent": ofd_unsent,
            "b_ofd_oldest_at": ofd_oldest_at, "b_clock_skew_s": clock_skew_s}))

    @staticmethod
    def _advance_watermark(conn: Connection, register: str | None, fd_before: int | None,
                           doc: FiscalDocument, now: dt.datetime) -> bool:
        """Our document directly follows a watermark at *fd_before*: nothing unexamined lies between, so
        the watermark moves to it — one UPDATE guarded by ``last_fd = fd_before`` (no row, or another
        position: nothing changes and the lane's next scan examines what lies between). True if it moved."""
        if register is None or fd_before is None or doc.fd_number != fd_before + 1:
            return False
        return fastpath.run(conn, _WATERMARK_NEXT, {"b_register": register, "b_fn": doc.fn_serial,
                                                    "b_fd": doc.fd_number, "b_fd_before": fd_before,
                                                    "b_now": now}).rowcount == 1


def _done_params(receipt_id: int, doc: FiscalDocument, attempt_id: int, fence: Fence | None,
                 register: str | None, fd_before: int | None, now: dt.datetime) -> dict[str, Any]:
    """Parameters of :data:`chained.DONE` (and the outcome half of :data:`chained.DONE_AND_CLAIM`)."""
    # b_advance: the watermark may move only to the document right after fd_before (_advance_watermark)
    advance = register is not None and fd_before is not None and doc.fd_number == fd_before + 1
    return {**chained.fence_params(fence), "b_id": receipt_id, "b_now": now, "b_fd": doc.fd_number,
            "b_fp": doc.fiscal_sign, "b_fn": doc.fn_serial, "b_shift": doc.shift_number,
            "b_receipt_no": doc.receipt_number, "b_at": doc.issued_at, "b_qr": doc.qr, "b_attempt": attempt_id,
            "b_register": register, "b_fd_before": fd_before, "b_advance": advance}


def _claim_params(register: str, group: str, fn_serial: str, fd_before: int, now: dt.datetime) -> dict[str, Any]:
    """Parameters of the claim half of :data:`chained.CLAIM` / :data:`chained.DONE_AND_CLAIM`."""
    return {"b_register": register, "b_group": group, "b_now": now, "b_claim_fn": fn_serial,
            "b_claim_fd_before": fd_before}


# The hot path's statements, built once and run through worker.ledger.fastpath (compiled once per dialect).
_CLAIM_HEAD = head_select()   # FOR UPDATE SKIP LOCKED rendered as nothing on SQLite
_CLAIM_SET = (update(receipts)
              .where(receipts.c.id == bindparam("b_id"), receipts.c.state == State.QUEUED.value)
              .values(state=State.SENDING.value, updated_at=bindparam("b_now"), register=bindparam("b_register"),
                      fn_serial=bindparam("b_fn"), fd_before=bindparam("b_fd_before"), intent_at=bindparam("b_now")))
_ATTEMPT_OPEN = insert(attempts).values(
    receipt_id=bindparam("b_id"), register=bindparam("b_register"), action="send", started_at=bindparam("b_now"),
    fd_before=bindparam("b_fd_before")).returning(attempts.c.id)
def _write_marks(conn: Connection, receipt_id: int, doc: FiscalDocument, now: dt.datetime) -> None:
    """Keep the FN's 2106 of every marked line with the receipt, in the transaction that marks it done."""
    if doc.marking_results:
        conn.execute(insert(receipt_marks), [
            {"receipt_id": receipt_id, "line": m.line, "code": base64.b64encode(m.code).decode("ascii"),
             "result": m.result, "checked_at": now} for m in doc.marking_results])


_DONE_SET = (update(receipts)
             .where(receipts.c.id == bindparam("b_id"), receipts.c.state == State.SENDING.value)
             .values(state=State.DONE.value, updated_at=bindparam("b_now"), fd_number=bindparam("b_fd"),
                     fiscal_sign=bindparam("b_fp"), fn_serial=bindparam("b_fn"), shift_number=bindparam("b_shift"),
                     receipt_number=bindparam("b_receipt_no"), fiscal_at=bindparam("b_at"), qr=bindparam("b_qr"),
                     error_class=None))
_ATTEMPT_DONE = (update(attempts).where(attempts.c.id == bindparam("b_attempt"))
                 .values(finished_at=bindparam("b_now"), outcome="done", error=None, fd_number=bindparam("b_fd")))
_WATERMARK_NEXT = (update(register_watermarks)
                   .where(register_watermarks.c.register == bindparam("b_register"),
                          register_watermarks.c.fn_serial == bindparam("b_fn"),
                          register_watermarks.c.last_fd == bindparam("b_fd_before"))
                   .values(last_fd=bindparam("b_fd"), updated_at=bindparam("b_now")))
# what the register showed is kept until a newer reading replaces it (NULL: keep the column);
# paused_since: when the lane went from running to paused (health: "paused longer than N")
_LANE_UPDATE = (update(lanes).where(lanes.c.name == bindparam("b_name"))
                .values(state=bindparam("b_state"), reason=bindparam("b_reason"),
                        heartbeat_at=bindparam("b_now", type_=DateTime),
                        fn_serial=func.coalesce(bindparam("b_fn", type_=String), lanes.c.fn_serial),
                        last_fd=func.coalesce(bindparam("b_last_fd", type_=Integer), lanes.c.last_fd),
                        shift_open=func.coalesce(bindparam("b_shift_open", type_=Integer), lanes.c.shift_open),
                        paused_since=case((bindparam("b_paused", type_=Boolean),
                                           func.coalesce(lanes.c.paused_since, bindparam("b_now", type_=DateTime))),
                                          else_=null())))
_LANE_INSERT = insert(lanes).values(
    name=bindparam("b_name"), state=bindparam("b_state"), reason=bindparam("b_reason"), heartbeat_at=bindparam("b_now"),
    fn_serial=bindparam("b_fn"), last_fd=bindparam("b_last_fd"), shift_open=bindparam("b_shift_open"),
    paused_since=bindparam("b_paused_since"))
_LANE_HEALTH = update(lanes).where(lanes.c.name == bindparam("b_name")).values(
    fn_expires_on=bindparam("b_fn_expires_on"), ofd_unsent=bindparam("b_ofd_unsent"),
    ofd_oldest_at=bindparam("b_ofd_oldest_at"), clock_skew_s=bindparam("b_clock_skew_s"))
# a lane's receipts left "sending" (read at every start and takeover)
_SENDING_ON = (select(*RECORD_COLS).select_from(QUEUE)
               .where(receipts.c.state == State.SENDING.value, receipts.c.register == bindparam("b_register"))
               .order_by(receipts.c.id))
_NEXT_DUE = select(func.min(receipts.c.next_attempt_at)).where(
    receipts.c.state == State.QUEUED.value, receipts.c.register_group == bindparam("b_group"))
