"""The ledger's plumbing: engine, read and write transactions, the compare-and-set state change."""
from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator

from sqlalchemy import Connection, Engine, select, update

from worker.errors import StateConflict
from worker.ledger import fastpath
from worker.ledger.db import READ_ONLY, create_ledger_engine, writer_lock
from worker.ledger.group_commit import GroupCommit
from worker.ledger.records import RECORD_COLS, utcnow
from worker.ledger.schema import ERROR_MAX_CHARS, OUTCOME_CHARS, attempts, payments, receipts
from worker.ledger.states import State, check_transition


class LedgerBase:
    """The ledger at one database URL: connections and guarded state changes."""

    def __init__(self, url: str, engine: Engine | None = None, *, read_only: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        self.engine = engine or create_ledger_engine(url, read_only=read_only)
        self.write_lock = writer_lock(self.engine)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite); committed on a clean exit."""
        with self.write_lock, self.engine.begin() as conn:
            yield conn

    def batched(self, fn: Callable[[Connection], Any], *, one_statement: bool = False) -> Any:
        """Run *fn(conn)* in a write transaction and return its result once committed: in the worker, in
        the group-commit writer's next shared transaction (worker.ledger.group_commit), else alone.

        *fn* may raise only the group commit's guard errors (StateConflict, LeaseLost, LeaseHeld) before
        it wrote anything; any other error fails every request of its batch (nothing is committed).
        *one_statement*: *fn* executes at most one statement (see :meth:`GroupCommit.submit`)."""
        gc = getattr(self, "_group_commit", None)
        if gc is not None:
            return gc.submit(fn, one_statement=one_statement)
        with self.write() as conn:
            return fn(conn)

    def enable_group_commit(self) -> None:
        """Batch the lanes' writes into shared transactions (the worker; see group_commit)."""
        if getattr(self, "_group_commit", None) is None:
            pg = self.engine.dialect.name == "postgresql"   # a statement can commit itself there
            self._group_commit: GroupCommit | None = GroupCommit(self.engine.connect, self.write_lock,
                                                                 statement_commits=pg)

    def disable_group_commit(self) -> None:
        """Finish pending batched writes and go back to one transaction per call."""
        gc, self._group_commit = getattr(self, "_group_commit", None), None
        if gc is not None:
            gc.close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction."""
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            with conn.begin():
                yield conn

    def reading(self) -> AbstractContextManager[fastpath.Tx]:
        """One read transaction for prebuilt statements (:func:`worker.ledger.fastpath.run`): what
        :meth:`read` gives, without SQLAlchemy's ``Connection`` (the lanes' start-up reads)."""
        return fastpath.reading(self.engine)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    def _select_records(self) -> Any:
        return select(*RECORD_COLS).select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id))

    @staticmethod
    def _cas(conn: Connection, receipt_id: int, expected: State, new: State, **values: Any) -> None:
        check_transition(expected, new)
        res = conn.execute(
            update(receipts)
            .where(receipts.c.id == receipt_id, receipts.c.state == expected.value)
            .values(state=new.value, updated_at=utcnow(), **values)
        )
        if res.rowcount != 1:
            raise StateConflict(f"receipt {receipt_id}: expected state {expected.value}, it moved")

    @staticmethod
    def _finish_attempt(conn: Connection, attempt_id: int | None, now: dt.datetime, outcome: str, *,
                        error: str | None = None, fd_number: int | None = None) -> None:
        if attempt_id is None:
            return
        conn.execute(update(attempts).where(attempts.c.id == attempt_id).values(
            finished_at=now, outcome=outcome[:OUTCOME_CHARS], error=error[:ERROR_MAX_CHARS] if error else None, fd_number=fd_number))
