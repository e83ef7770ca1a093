"""Group commit: many lanes' intents and outcomes in one durable ledger transaction.

A durable commit costs one fsync (SQLite WAL with ``synchronous=FULL``); SQLite has one writer, so
200 lanes each committing their own intent and outcome would queue behind 400 fsyncs a second. Here
every claim/outcome that is waiting (up to MAX_BATCH) runs in ONE transaction, committed once (by the
lane that found the writer free, or by the writer thread); each lane gets its own result only after that commit, so an
intent is still durable before its register is called. One request's guard failing (StateConflict, or LeaseLost — that lane's lease
was taken over — raised before it wrote anything) fails only that request and does not undo the
others; any other error rolls the whole batch back and every lane in it sees the error — nothing of the
batch was committed, so no register was called on its strength (an outcome that was lost this way
leaves its receipt "sending", and recovery finds the document by its tag).

The writer keeps ONE connection while batches keep coming: a pool checkout and its reset on return
cost as much CPU as the statements of a claim (and a PostgreSQL pre-ping is one more round trip per
transaction). A connection idle for ``REUSE_IDLE_SECONDS`` goes back to the pool and the next batch
checks one out again (pre-pinged), so a link that died while the worker was idle is replaced before it is
used; after any failed batch the connection is dropped, never reused.

A request run alone that is ONE statement (``submit(..., one_statement=True)``) is committed by that
statement on PostgreSQL (the driver's autocommit): a lane sending a backlog on its own pays one round trip
per receipt instead of three (psycopg's BEGIN, the statement, COMMIT — ~140 µs each on the 2-core bench
machine). The statement is still one atomic, durable transaction (``synchronous_commit`` is the server's);
what changes is only who says COMMIT. In a batch it shares the batch's transaction as any request does.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

from sqlalchemy import Connection

from worker.errors import LeaseHeld, LeaseLost, StateConflict

#: requests per transaction. Not more: every request of a batch waits for the batch's last one and its commit,
#: and the commit releases them all at once. With 200 registers finishing their receipts together (a farm
#: draining a backlog), one batch of ~200 held every lane ~50 ms and sent them off in step again, so they
#: stayed in step; batches of 16 let the first lanes go after a few ms. bench.pool farm_out_of_process, 10
#: receipts per register, five interleaved runs each: 0.921-0.938 (mean 0.930) at 256, 0.933-0.956 (mean
#: 0.944) at 16 -- a small gain, near the noise; a batch of 16 still costs one commit per 16 requests
MAX_BATCH = 16
REUSE_IDLE_SECONDS = 1.0   # the writer's connection is kept while batches come at least this often
#: a request's guard failures: raised before the request wrote anything, so the batch may go on
GUARD_ERRORS = (StateConflict, LeaseLost, LeaseHeld)


class GroupCommit:
    """Batches write requests ``fn(conn) -> result`` into shared transactions.

    Whoever finds the writer free runs the batch: a lane submitting while no batch is running runs its own
    request (with whatever else is queued) in its own thread — a hand-off to another thread and back cost
    about as much CPU as a receipt's ledger statements. While a batch runs, requests queue up, and the
    writer thread (or the next submitter to find the writer free) runs them together as the next batch.
    """

    def __init__(self, connect: Callable[[], Connection],
                 lock: AbstractContextManager[Any] = nullcontext(), *,
                 statement_commits: bool = False) -> None:
        self._connect = connect   # a pooled connection whose begin() is the ledger's write transaction
        self._lock = lock         # the ledger's in-process writer lock (SQLite; see db.writer_lock)
        #: a statement can be its own transaction (PostgreSQL; SQLite's lanes write several statements and
        #: need BEGIN IMMEDIATE under the writer lock)
        self._statement_commits = statement_commits
        self._q: queue.SimpleQueue[tuple[Callable[[Connection], Any], Future] | None] = queue.SimpleQueue()
        #: held by the one thread running a batch (the writer thread or a submitting lane)
        self._running = threading.Lock()
        #: released once per queued request: wakes the writer thread (it may find a lane already ran them)
        self._queued = threading.Semaphore(0)
        self._conn: Connection | None = None
        self._used = 0.0
        self._stopping = False
        self.batches = 0
        self.requests = 0
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[Connection], Any], *, one_statement: bool = False) -> Any:
        """Run *fn* in the next shared transaction; return its result once that transaction committed.

        *one_statement*: *fn* executes at most one statement, and raises a guard error only when that
        statement wrote nothing; run alone, the statement may then be its own transaction (see above)."""
        fut: Future = Future()
        if not self._stopping and self._running.acquire(blocking=False):
            try:   # the writer is free: run this request now, with whatever is queued
                queued = self._drain(MAX_BATCH - 1)
                if not queued:   # alone (a single lane's every receipt): no future to set and wait on
                    return self._run_alone(fn, one_statement and self._statement_commits)
                self._run_batch([(fn, fut), *queued])
            finally:
                self._running.release()
        else:
            self._q.put((fn, fut))
            self._queued.release()
        return fut.result()

    def close(self) -> None:
        """Finish what was submitted, then stop the writer thread."""
        self._stopping = True
        self._q.put(None)
        self._queued.release()
        self._thread.join()

    def _drain(self, limit: int) -> list[tuple[Callable[[Connection], Any], Future]]:
        """Up to *limit* queued requests, without waiting (a stop marker is put back for the writer thread)."""
        batch: list[tuple[Callable[[Connection], Any], Future]] = []
        while len(batch) < limit and not self._q.empty():   # (get_nowait on an empty queue raises: slower)
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._q.put(None)   # the writer thread stops once the queue before it is done
                self._queued.release()
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            self._queued.acquire()
            with self._running:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    continue   # a submitting lane already ran it
                if item is None:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    return
                self._run_batch([item, *self._drain(MAX_BATCH - 1)])

    def _run_batch(self, items: list[tuple[Callable[[Connection], Any], Future]]) -> None:
        """One transaction for *items*, committed once; each request's future gets its own result (called
        with ``_running`` held)."""
        done: list[tuple[Future, Any, BaseException | None]] = []
        try:
            conn = self._connection()
            with self._lock, conn.begin():
                for fn, fut in items:
                    try:
                        done.append((fut, fn(conn), None))
                    except GUARD_ERRORS as exc:   # its guard failed: it wrote nothing
                        done.append((fut, None, exc))
        except BaseException as exc:  # the transaction rolled back: nobody's write happened
            self._conn = _discard(self._conn)
            for _fn, fut in items:
                fut.set_exception(exc)
            return
        self._committed(len(items))
        for fut, result, exc in done:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def _run_alone(self, fn: Callable[[Connection], Any], statement_commits: bool = False) -> Any:
        """*fn* in a transaction of its own (nothing else was queued): its result, or its error, directly
        (called with ``_running`` held). A guard error has written nothing: the connection is kept.
        *statement_commits*: *fn* is one statement, run in the driver's autocommit mode."""
        try:
            conn = self._connection()
            with self._lock:
                if statement_commits:
                    result = _autocommitted(conn, fn)
                else:
                    with conn.begin():
                        result = fn(conn)
        except GUARD_ERRORS:
            raise
        except BaseException:   # rolled back; the connection is not reused
            self._conn = _discard(self._conn)
            raise
        self._committed(1)
        return result

    def _connection(self) -> Connection:
        """The writer's connection: kept while batches keep coming, else a fresh (pre-pinged) checkout."""
        if self._conn is not None and time.monotonic() - self._used > REUSE_IDLE_SECONDS:
            self._conn.close()   # back to the pool: the next checkout pre-pings it
            self._conn = None
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _committed(self, requests: int) -> None:
        self._used = time.monotonic()
        self.batches += 1
        self.requests += requests


def _autocommitted(conn: Connection, fn: Callable[[Connection], Any]) -> Any:
    """*fn(conn)* with the DBAPI connection in autocommit mode (its one statement commits itself), and the
    connection back in transaction mode afterwards — unless it is broken (the caller discards it then)."""
    dbapi = conn.connection.dbapi_connection
    dbapi.autocommit = True   # psycopg: no round trip; refused inside a transaction (there is none here)
    try:
        return fn(conn)
    finally:
        if not dbapi.closed:
            if conn.in_transaction():   # Connection.execute began SQLAlchemy's bookkeeping: nothing to end
                conn.rollback()         # (the driver, in autocommit, sends nothing)
            dbapi.autocommit = False


def _discard(conn: Connection | None) -> None:
    """Give back a connection whose transaction failed (the pool invalidates a broken one)."""
    if conn is not None:
        try:
            conn.close()
        except Exception:  # already broken: the pool drops it
            pass
    return None
