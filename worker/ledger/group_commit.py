"""Group commit: many lanes' intents and outcomes in one durable ledger transaction.

A durable commit costs one fsync (SQLite WAL with ``synchronous=FULL``); SQLite has one writer, so
200 lanes each committing their own intent and outcome would queue behind 400 fsyncs a second. Here
one writer thread takes every claim/outcome that is waiting, runs them in ONE transaction and commits
once; each lane gets its own result only after that commit, so an intent is still durable before its
register is called. One request's guard failing (StateConflict, or LeaseLost — that lane's lease
was taken over — raised before it wrote anything) fails only that request and does not undo the
others; any other error rolls the whole batch back and every lane in it sees the error — nothing of the
batch was committed, so no register was called on its strength (an outcome that was lost this way
leaves its receipt "sending", and recovery finds the document by its tag).

The writer keeps ONE connection while batches keep coming: a pool checkout and its reset on return
cost as much CPU as the statements of a claim (and a PostgreSQL pre-ping is one more round trip per
transaction). A connection idle for ``REUSE_IDLE_SECONDS`` goes back to the pool and the next batch
checks one out again (pre-pinged), so a link that died while the worker was idle is replaced before it is
used; after any failed batch the connection is dropped, never reused.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Iterator

from sqlalchemy import Connection

from worker.errors import LeaseHeld, LeaseLost, StateConflict

MAX_BATCH = 256   # requests per transaction; a bigger batch only holds the write lock longer
REUSE_IDLE_SECONDS = 1.0   # the writer's connection is kept while batches come at least this often
#: a request's guard failures: raised before the request wrote anything, so the batch may go on
GUARD_ERRORS = (StateConflict, LeaseLost, LeaseHeld)


class GroupCommit:
    """One writer thread that batches write requests ``fn(conn) -> result`` into shared transactions."""

    def __init__(self, connect: Callable[[], Connection],
                 lock: AbstractContextManager[Any] = nullcontext()) -> None:
        self._connect = connect   # a pooled connection whose begin() is the ledger's write transaction
        self._lock = lock         # the ledger's in-process writer lock (SQLite; see db.writer_lock)
        self._q: queue.SimpleQueue[tuple[Callable[[Connection], Any], Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
        self._thread.start()
        self.batches = 0
        self.requests = 0

    def submit(self, fn: Callable[[Connection], Any]) -> Any:
        """Run *fn* in the next shared transaction; return its result once that transaction committed."""
        fut: Future = Future()
        self._q.put((fn, fut))
        return fut.result()

    def close(self) -> None:
        """Finish what was submitted, then stop the writer thread."""
        self._q.put(None)
        self._thread.join()

    def _take(self) -> Iterator[tuple[Callable[[Connection], Any], Future]] | None:
        first = self._q.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._q.put(None)   # stop after this batch
                break
            batch.append(item)
        return iter(batch)

    def _run(self) -> None:
        conn: Connection | None = None
        used = 0.0
        while (batch := self._take()) is not None:
            items = list(batch)
            done: list[tuple[Future, Any, BaseException | None]] = []
            if conn is not None and time.monotonic() - used > REUSE_IDLE_SECONDS:
                conn.close()   # back to the pool: the next checkout pre-pings it
                conn = None
            try:
                if conn is None:
                    conn = self._connect()
                with self._lock, conn.begin():
                    for fn, fut in items:
                        try:
                            done.append((fut, fn(conn), None))
                        except GUARD_ERRORS as exc:   # its guard failed: it wrote nothing
                            done.append((fut, None, exc))
            except BaseException as exc:  # the transaction rolled back: nobody's write happened
                conn = _discard(conn)
                for _fn, fut in items:
                    fut.set_exception(exc)
                continue
            used = time.monotonic()
            self.batches += 1
            self.requests += len(items)
            for fut, result, exc in done:
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
        if conn is not None:
            conn.close()


def _discard(conn: Connection | None) -> None:
    """Give back a connection whose transaction failed (the pool invalidates a broken one)."""
    if conn is not None:
        try:
            conn.close()
        except Exception:  # already broken: the pool drops it
            pass
    return None
