"""PostgreSQL only: a receipt's outcome and the next claim as ONE statement (data-modifying CTEs).

A lane sending a backlog wrote, per receipt, seven statements one by one (fence, outcome, attempt,
watermark, the next claim's head, its UPDATE, its attempt): on PostgreSQL each costs ~60 µs of client CPU
plus a round trip and the server's parse/plan — most of a receipt's ledger cost. Here the same writes are
sub-statements of one ``WITH … UPDATE … RETURNING``; SQLite keeps the per-statement path (no
data-modifying CTEs there, and its statements are in-process and cheap).

Why it is safe — what PostgreSQL guarantees and what we add:

* Every data-modifying CTE runs to completion whether or not anything reads it, and all sub-statements
  see ONE snapshot (none sees another's writes). So each write is *conditioned on the previous guard*:
  ``done`` only if the fence holds (``fence_ok``), the attempt and the watermark only if ``done`` hit its
  row, the claim's head only if the watermark moved (or, for a bare claim, if the fence holds). A failed
  guard therefore writes nothing at all, and Python raises the same LeaseLost / StateConflict from the
  returned flags — the group commit's "a guard error fails only its request" still holds (a write left
  behind before a raise would be committed with the rest of the batch; tests/ledger/test_chained_pg.py
  proves none is).
* The fence is ``SELECT … FOR UPDATE`` in its own CTE: the lease row stays locked to the end of the
  transaction, as with :meth:`~worker.ledger.leases.LeaseWrites.check_fence`. A CTE with a row lock is
  never inlined by the planner (``contain_dml`` in PostgreSQL's subselect.c rejects FOR UPDATE as it
  rejects INSERT) and is evaluated once.
* The head keeps ``FOR UPDATE SKIP LOCKED OF receipts``: two lanes never take the same receipt. The
  claim's UPDATE re-checks ``state = 'queued'`` (belt and braces, as before): if it misses, the statement
  returns the head without an attempt id and Python reacts as to a 0-row ``_CLAIM_SET``.
* The one snapshot has a consequence the per-statement path did not: the head's prerequisite check
  (``waits_for``) cannot see the ``done`` written by the same statement — a refund waiting for the sale
  just recorded would look blocked. The chained head therefore counts the receipt being recorded done
  (``b_id``) as done; it is, whenever the head is looked at (the head is gated on ``done``).
* A head whose tag a register already holds ("unclaimed") is returned with its flag and NOT claimed;
  Python adopts it the old way (:meth:`~worker.ledger.documents.DocumentWrites.claim_for`, rare) and
  takes the next head with :data:`CLAIM`.

Written with SQLAlchemy Core (``.cte()`` on update/insert with ``returning``), built once here and run
through :func:`worker.ledger.fastpath.run` (compiled once). Free-standing parameters carry their types:
the psycopg dialect renders them with a cast (``%(b_now)s::TIMESTAMP``), which PostgreSQL needs where no
column gives the type (``INSERT … SELECT``, a bare boolean).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (Boolean, ColumnElement, CTE, DateTime, Integer, Select, String, bindparam, exists,
                        func, insert, literal, or_, select, true, update)

from worker.errors import StateConflict
from worker.ledger.due_queue import HEAD_UNCLAIMED, head_select
from worker.ledger.leases import Fence, raise_if_stale
from worker.ledger.schema import attempts, register_leases, receipts, register_watermarks
from worker.ledger.states import State

#: the flag and extra columns of a chained statement's row (the rest is the head's RECORD_COLS)
FLAGS = ("fence_epoch", "fence_holder", "done", "moved", "attempt_id")


def _fence() -> tuple[CTE, ColumnElement[bool]]:
    """The lease row locked FOR UPDATE, and "the fence holds" (always, when ``b_fenced`` is false: the
    caller has no fence, or checked it earlier in this transaction)."""
    fence = (select(register_leases.c.epoch, register_leases.c.holder)
             .where(register_leases.c.register == bindparam("b_fence_register", type_=String))
             .with_for_update().cte("fence"))
    holds = exists().where(fence.c.epoch == bindparam("b_epoch", type_=Integer),
                           fence.c.holder == bindparam("b_holder", type_=String))
    return fence, or_(~bindparam("b_fenced", type_=Boolean), holds)


def _state_guard(state: State) -> ColumnElement[bool]:
    """``receipts.state = state`` as a guard on a row the statement names by its primary key, written so
    that no index can serve it (``coalesce``). Indexable, it lets the planner reach the row through
    ix_receipts_claim / ix_receipts_state_next when the statistics are older than the backlog (ANALYZE
    saw no queued receipt, 20 000 are queued now): a scan of every queued row, 5.6 ms a receipt in
    bench.pool (auto_explain); the primary key is one row whatever the statistics say."""
    return func.coalesce(receipts.c.state, "") == state.value


def _done(fence_ok: ColumnElement[bool]) -> tuple[CTE, CTE, CTE]:
    """sending → done, its attempt finished, the watermark moved: each conditioned on the guard before it."""
    done = (update(receipts)
            .where(receipts.c.id == bindparam("b_id"), _state_guard(State.SENDING), fence_ok)
            .values(state=State.DONE.value, updated_at=bindparam("b_now"), fd_number=bindparam("b_fd"),
                    fiscal_sign=bindparam("b_fp"), fn_serial=bindparam("b_fn"), shift_number=bindparam("b_shift"),
                    receipt_number=bindparam("b_receipt_no"), fiscal_at=bindparam("b_at"), qr=bindparam("b_qr"),
                    error_class=None)
            .returning(receipts.c.id).cte("done"))
    attempt_done = (update(attempts).where(attempts.c.id == bindparam("b_attempt"), exists(done.select()))
                    .values(finished_at=bindparam("b_now"), outcome="done", error=None, fd_number=bindparam("b_fd"))
                    .returning(attempts.c.id).cte("attempt_done"))
    # b_advance: the document directly follows fd_before (decided in Python, as _advance_watermark did)
    moved = (update(register_watermarks)
             .where(register_watermarks.c.register == bindparam("b_register"),
                    register_watermarks.c.fn_serial == bindparam("b_fn"),
                    register_watermarks.c.last_fd == bindparam("b_fd_before"),
                    bindparam("b_advance", type_=Boolean), exists(done.select()))
             .values(last_fd=bindparam("b_fd"), updated_at=bindparam("b_now"))
             .returning(register_watermarks.c.register).cte("moved"))
    return done, attempt_done, moved


def _claim(head: CTE) -> CTE:
    """queued → sending for the head (not an "unclaimed" one), and its attempts row: the claim's intent."""
    # the head's id as a scalar subquery, not a join: the row by primary key (see _state_guard)
    head_id = select(head.c.id).where(head.c[HEAD_UNCLAIMED].is_(False)).scalar_subquery()
    claimed = (update(receipts)
               .where(receipts.c.id == head_id, _state_guard(State.QUEUED))
               .values(state=State.SENDING.value, updated_at=bindparam("b_now"), register=bindparam("b_register"),
                       fn_serial=bindparam("b_claim_fn"), fd_before=bindparam("b_claim_fd_before"),
                       intent_at=bindparam("b_now"))
               .returning(receipts.c.id).cte("claimed"))
    return (insert(attempts)
            .from_select(["receipt_id", "register", "action", "started_at", "fd_before"],
                         select(claimed.c.id, bindparam("b_register", type_=String), literal("send", String),
                                bindparam("b_now", type_=DateTime), bindparam("b_claim_fd_before", type_=Integer)))
            .returning(attempts.c.id, attempts.c.receipt_id).cte("opened"))


def _build(*, done: bool, claim: bool) -> Select:
    fence, fence_ok = _fence()
    flags: list[ColumnElement[Any]] = [select(fence.c.epoch).scalar_subquery().label("fence_epoch"),
                                       select(fence.c.holder).scalar_subquery().label("fence_holder")]
    extra: list[CTE] = []
    if done:
        done_cte, attempt_done, moved = _done(fence_ok)
        extra.append(attempt_done)   # read by nobody: rendered through add_cte, run all the same
        flags += [select(func.count()).select_from(done_cte).scalar_subquery().label("done"),
                  select(func.count()).select_from(moved).scalar_subquery().label("moved")]
    if not claim:
        return select(*flags).add_cte(*extra)
    # the claim: after a done only if the watermark moved (record_done_and_claim); alone, if the fence holds
    if done:
        head = head_select(exists(moved.select()), just_done=bindparam("b_id")).cte("head")
    else:
        head = head_select(fence_ok).cte("head")
    opened = _claim(head)
    row = select(*flags).cte("flags")   # one row always: the head, if any, is joined to it
    return (select(*row.c, *head.c, opened.c.id.label("attempt_id"))
            .select_from(row.outerjoin(head, true()).outerjoin(opened, opened.c.receipt_id == head.c.id))
            .add_cte(*extra))


#: record_done: fence, done, attempt, watermark → fence_epoch, fence_holder, done, moved
DONE = _build(done=True, claim=False)
#: claim: fence (optional), head, claim, attempt → fence_epoch, fence_holder, head's RECORD_COLS, attempt_id
CLAIM = _build(done=False, claim=True)
#: record_done_and_claim: all of it, the claim gated on the watermark having moved
DONE_AND_CLAIM = _build(done=True, claim=True)


def fence_params(fence: Fence | None) -> dict[str, Any]:
    """The fence's parameters (``b_fenced`` false: no fence, nothing checked or locked)."""
    if fence is None:
        return {"b_fenced": False, "b_fence_register": None, "b_epoch": None, "b_holder": None}
    return {"b_fenced": True, "b_fence_register": fence.register, "b_epoch": fence.epoch, "b_holder": fence.holder}


def check_guards(row: dict[str, Any], fence: Fence | None, receipt_id: int | None) -> None:
    """Raise what the per-statement path raised, in its order: LeaseLost (stale fence), then StateConflict
    (the done UPDATE missed its row; *receipt_id* None: the statement records no outcome). The statement
    wrote nothing in either case (every write is conditioned on these guards)."""
    if fence is not None:
        raise_if_stale(fence, (row["fence_epoch"], row["fence_holder"]))
    if receipt_id is not None and row["done"] != 1:
        raise StateConflict(f"receipt {receipt_id}: expected state sending, it moved")


def split_head(row: dict[str, Any]) -> tuple[dict[str, Any] | None, int | None]:
    """(the head as {RECORD_COLS key: value} plus :data:`HEAD_UNCLAIMED`, or None; its attempt id or None)
    from a claiming statement's row (*row* is consumed)."""
    for key in FLAGS[:4]:
        row.pop(key, None)
    attempt_id = row.pop("attempt_id")
    if row["id"] is None:   # the outer join found no head
        return None, None
    return row, attempt_id
