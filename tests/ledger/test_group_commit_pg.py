"""The group commit on real PostgreSQL: a one-statement request run alone is its own transaction (the
driver's autocommit, no BEGIN and COMMIT round trips); everything else — and the connection afterwards —
keeps BEGIN … COMMIT."""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus

from worker.errors import StateConflict
from worker.ledger.group_commit import GroupCommit


@pytest.fixture()
def engine(postgres_url: sa.URL) -> Iterator[sa.Engine]:
    eng = sa.create_engine(postgres_url)
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
    yield eng
    eng.dispose()


def _driver(conn: sa.Connection) -> Any:
    """The psycopg connection under *conn* (the lanes' statements run on it: worker.ledger.fastpath)."""
    return conn.connection.dbapi_connection


def _insert(key: str, seen: dict[str, Any],
            then: Callable[[], None] = lambda: None) -> Callable[[sa.Connection], str]:
    """A request: INSERT *key* on the driver's cursor, note the transaction status and backend right after
    it, then *then* (which may raise)."""
    def fn(conn: sa.Connection) -> str:
        with _driver(conn).cursor() as cur:
            cur.execute("INSERT INTO t (k) VALUES (%s)", (key,))
            seen["status"] = _driver(conn).info.transaction_status
            seen["backend"] = _driver(conn).info.backend_pid
        then()
        return key
    return fn


def _keys(engine: sa.Engine) -> set[str]:
    with engine.connect() as c:
        return set(c.exec_driver_sql("SELECT k FROM t").scalars())


def test_a_one_statement_request_alone_is_committed_by_its_statement(engine: sa.Engine) -> None:
    """Right after the INSERT no transaction is open (it committed itself: no COMMIT to send) and another
    connection already sees the row; a request not marked one-statement still runs in BEGIN … COMMIT."""
    gc = GroupCommit(engine.connect, statement_commits=True)
    try:
        one: dict[str, Any] = {}
        seen_elsewhere: list[set[str]] = []
        request = _insert("a", one, lambda: seen_elsewhere.append(_keys(engine)))
        assert gc.submit(request, one_statement=True) == "a"
        assert one["status"] is TransactionStatus.IDLE and seen_elsewhere == [{"a"}]

        plain: dict[str, Any] = {}
        gc.submit(_insert("b", plain))
        assert plain["status"] is TransactionStatus.INTRANS
        assert plain["backend"] == one["backend"]   # the writer's one connection, back in transaction mode
        assert _keys(engine) == {"a", "b"}
    finally:
        gc.close()


def test_after_a_one_statement_request_a_failing_request_still_rolls_back(engine: sa.Engine) -> None:
    """The connection leaves autocommit after the statement: a later request that fails after its INSERT
    leaves no row (it would, were the connection left in autocommit)."""
    gc = GroupCommit(engine.connect, statement_commits=True)
    try:
        gc.submit(_insert("a", {}), one_statement=True)

        def boom() -> None:
            raise RuntimeError("after the write")
        with pytest.raises(RuntimeError):
            gc.submit(_insert("b", {}, boom))
        assert _keys(engine) == {"a"}
    finally:
        gc.close()


def test_a_guard_error_after_a_statement_that_wrote_nothing_keeps_the_connection(engine: sa.Engine) -> None:
    """A one-statement request whose guard fails (its statement matched no row) raises the guard error;
    the writer keeps its connection, in transaction mode."""
    gc = GroupCommit(engine.connect, statement_commits=True)
    try:
        backend: list[int] = []

        def guarded(conn: sa.Connection) -> None:
            with _driver(conn).cursor() as cur:
                cur.execute("UPDATE t SET k = 'x' WHERE k = 'missing'")
                backend.append(_driver(conn).info.backend_pid)
                if cur.rowcount != 1:
                    raise StateConflict("moved")
        with pytest.raises(StateConflict):
            gc.submit(guarded, one_statement=True)
        after: dict[str, Any] = {}
        gc.submit(_insert("b", after))
        assert after["backend"] == backend[0] and after["status"] is TransactionStatus.INTRANS
    finally:
        gc.close()


def test_a_failing_statement_writes_nothing_and_the_next_request_is_transactional(engine: sa.Engine) -> None:
    """A one-statement request whose statement fails (duplicate key) wrote nothing and raises; its
    connection is given back to the pool, and the next request runs in BEGIN … COMMIT again."""
    gc = GroupCommit(engine.connect, statement_commits=True)
    try:
        gc.submit(_insert("a", {}), one_statement=True)
        with pytest.raises(sa.exc.IntegrityError):
            def dup(conn: sa.Connection) -> None:
                try:
                    with _driver(conn).cursor() as cur:
                        cur.execute("INSERT INTO t (k) VALUES ('a'), ('c')")
                except Exception as exc:   # as worker.ledger.fastpath raises driver errors
                    raise sa.exc.DBAPIError.instance(None, None, exc, type(exc)) from exc
            gc.submit(dup, one_statement=True)
        after: dict[str, Any] = {}
        gc.submit(_insert("b", after))
        assert after["status"] is TransactionStatus.INTRANS
        assert _keys(engine) == {"a", "b"}
    finally:
        gc.close()


def test_a_one_statement_request_in_a_batch_shares_the_batch_transaction(engine: sa.Engine) -> None:
    """Queued behind a busy writer, a one-statement request runs inside the next batch's BEGIN … COMMIT."""
    gc = GroupCommit(engine.connect, statement_commits=True)
    gate, holding = threading.Event(), threading.Event()
    try:
        def hold(conn: sa.Connection) -> None:
            holding.set()
            gate.wait(10)
        first = threading.Thread(target=gc.submit, args=(hold,))
        first.start()
        assert holding.wait(10)
        seen: dict[str, Any] = {}
        queued = threading.Thread(target=gc.submit, args=(_insert("a", seen),),
                                  kwargs={"one_statement": True})
        queued.start()
        while gc._q.qsize() < 1:
            threading.Event().wait(0.01)
        gate.set()
        for t in (first, queued):
            t.join(10)
        assert seen["status"] is TransactionStatus.INTRANS and _keys(engine) == {"a"}
    finally:
        gate.set()
        gc.close()


def test_without_statement_commits_one_statement_is_ignored(engine: sa.Engine) -> None:
    """SQLite's group commit (statement_commits false) runs every request in BEGIN … COMMIT."""
    gc = GroupCommit(engine.connect)
    try:
        seen: dict[str, Any] = {}
        gc.submit(_insert("a", seen), one_statement=True)
        assert seen["status"] is TransactionStatus.INTRANS
    finally:
        gc.close()
