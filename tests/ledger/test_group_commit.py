"""The group commit: a submitter that finds the writer free runs its own batch; queued requests share
one transaction; a failed transaction fails exactly the requests of its batch."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from worker.errors import StateConflict
from worker.ledger.group_commit import MAX_BATCH, GroupCommit


@pytest.fixture()
def engine(tmp_path: Path) -> sa.Engine:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'gc.db'}", connect_args={"check_same_thread": False})
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY, thread TEXT)")
    yield eng
    eng.dispose()


def _insert(key: str):  # type: ignore[no-untyped-def]
    def fn(conn: sa.Connection) -> str:
        conn.exec_driver_sql("INSERT INTO t (k, thread) VALUES (?, ?)", (key, threading.current_thread().name))
        return key
    return fn


def _rows(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.exec_driver_sql("SELECT k, thread FROM t").all())


def test_a_submitter_finding_the_writer_free_runs_its_request_itself(engine: sa.Engine) -> None:
    """No hand-off to the writer thread when nothing else is running: the request runs (and commits) in the
    caller's thread, and its result is returned after the commit."""
    gc = GroupCommit(engine.connect)
    try:
        assert gc.submit(_insert("a")) == "a"
        assert _rows(engine) == {"a": threading.current_thread().name}
        assert (gc.batches, gc.requests) == (1, 1)
    finally:
        gc.close()


def test_concurrent_submitters_share_transactions_and_every_request_commits_once(engine: sa.Engine) -> None:
    """8 threads × 100 requests: each key committed exactly once, in fewer transactions than requests, and
    the writer thread stops cleanly afterwards."""
    gc = GroupCommit(engine.connect)
    errors: list[BaseException] = []

    def lane(n: int) -> None:
        try:
            for i in range(100):
                assert gc.submit(_insert(f"{n}-{i}")) == f"{n}-{i}"
        except BaseException as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(n,), name=f"lane{n}") for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    gc.close()
    assert not errors and not any(t.is_alive() for t in threads)
    rows = _rows(engine)
    assert sorted(rows) == sorted(f"{n}-{i}" for n in range(8) for i in range(100))
    assert gc.requests == 800 and gc.batches < 800


def test_a_batch_takes_at_most_max_batch_requests_and_the_rest_follow(engine: sa.Engine) -> None:
    """40 requests queued behind a busy writer commit in ceil(40 / MAX_BATCH) transactions, none larger
    than MAX_BATCH (a batch's requests all wait for its last one), each request exactly once."""
    assert MAX_BATCH < 40
    gc = GroupCommit(engine.connect)
    gate, holding = threading.Event(), threading.Event()
    sizes: list[int] = []
    run_batch = gc._run_batch
    gc._run_batch = lambda items: sizes.append(len(items)) or run_batch(items)  # type: ignore[method-assign]

    def hold(conn: sa.Connection) -> str:
        holding.set()
        gate.wait(10)
        return "hold"

    first = threading.Thread(target=gc.submit, args=(hold,))
    first.start()
    try:
        assert holding.wait(10)
        queued = [threading.Thread(target=gc.submit, args=(_insert(f"k{i}"),)) for i in range(40)]
        for t in queued:
            t.start()
        while gc._q.qsize() < 40:
            threading.Event().wait(0.01)
        gate.set()
        for t in [first, *queued]:
            t.join(10)
    finally:
        gate.set()
        gc.close()
    assert sorted(_rows(engine)) == sorted(f"k{i}" for i in range(40))
    assert sizes == [MAX_BATCH] * (40 // MAX_BATCH) + ([40 % MAX_BATCH] if 40 % MAX_BATCH else [])
    assert (gc.batches, gc.requests) == (1 + len(sizes), 41)


def test_a_failed_transaction_fails_its_whole_batch_and_a_guard_fails_only_its_request(engine: sa.Engine) -> None:
    """A guard error (raised before writing) fails one request and the batch commits; any other error rolls
    the batch back and every request in it sees that error."""
    gc = GroupCommit(engine.connect)
    gate, holding = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def hold(conn: sa.Connection) -> None:   # keeps the writer busy until the next batch is queued
        holding.set()
        gate.wait(10)

    def guard(conn: sa.Connection) -> None:
        raise StateConflict("moved")

    def broken(conn: sa.Connection) -> None:
        conn.exec_driver_sql("INSERT INTO nowhere VALUES (1)")

    def submit(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        try:
            results[name] = gc.submit(fn)
        except Exception as exc:  # noqa: BLE001 — the test inspects what each request got
            results[name] = exc

    def one_batch_behind_the_writer(hold_name: str, queued: tuple) -> None:  # type: ignore[type-arg]
        """Occupy the writer with *hold*, queue *queued* behind it, then let all of them run."""
        gate.clear()
        holding.clear()
        first = threading.Thread(target=submit, args=(hold_name, hold))
        first.start()
        assert holding.wait(10)
        others = [threading.Thread(target=submit, args=(n, f)) for n, f in queued]
        for t in others:
            t.start()
        while gc._q.qsize() < len(queued):
            threading.Event().wait(0.01)
        gate.set()
        for t in [first, *others]:
            t.join(10)

    try:
        one_batch_behind_the_writer("hold", (("x", _insert("x")), ("guard", guard)))
        assert results["x"] == "x" and isinstance(results["guard"], StateConflict)
        assert "x" in _rows(engine)

        one_batch_behind_the_writer("hold2", (("y", _insert("y")), ("broken", broken)))
        assert isinstance(results["y"], sa.exc.OperationalError) and results["y"] is results["broken"]
        assert "y" not in _rows(engine)
        assert gc.submit(_insert("z")) == "z"   # a new connection after the failed batch
    finally:
        gate.set()
        gc.close()


def test_a_request_alone_gets_its_guard_error_or_failure_directly_and_writes_nothing(engine: sa.Engine) -> None:
    """With nothing else queued, a request runs without a future: its guard error reaches the caller and the
    writer keeps its connection; any other error rolls back what the request wrote and reaches the caller,
    and the next request commits on a fresh connection."""
    gc = GroupCommit(engine.connect)

    def guard(conn: sa.Connection) -> None:
        raise StateConflict("moved")

    def half_then_broken(conn: sa.Connection) -> None:
        _insert("half")(conn)
        conn.exec_driver_sql("INSERT INTO nowhere VALUES (1)")

    try:
        assert gc.submit(_insert("a")) == "a"
        kept = gc._conn
        with pytest.raises(StateConflict):
            gc.submit(guard)
        assert gc._conn is kept and gc.submit(_insert("b")) == "b"
        with pytest.raises(sa.exc.OperationalError):
            gc.submit(half_then_broken)
        assert gc._conn is None
        assert gc.submit(_insert("c")) == "c"
        assert set(_rows(engine)) == {"a", "b", "c"}
        assert (gc.batches, gc.requests) == (3, 3)
    finally:
        gc.close()
