"""Opening the ledger database: SQLite (default) or PostgreSQL, with the durability settings.

SQLite: WAL, ``synchronous=FULL`` (a WAL commit under NORMAL may roll back after a power loss —
that would erase an intent while its receipt exists), a busy timeout, ``BEGIN IMMEDIATE`` for
every write transaction (a deferred transaction that upgrades to a writer gets SQLITE_BUSY at
once, ignoring the timeout), and the file created 0600 in a 0700 directory.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from worker.defaults import SQLITE_BUSY_TIMEOUT_MS
from worker.errors import ConfigError

#: execution option that marks a read-only transaction (SQLite then uses a deferred BEGIN)
READ_ONLY = "kkt_read_only"


def create_ledger_engine(url: str, *, read_only: bool = False,
                         idle_in_transaction_ms: int | None = None, lock_timeout_ms: int | None = None) -> Engine:
    """An engine for the ledger at *url* with the settings above applied.

    ``read_only``: for the accountant's and the admin's read commands — nothing is created or
    written, not even a pragma, so a reader without write permission (or a backup copy on
    read-only media) can open the ledger; on PostgreSQL every transaction is READ ONLY.
    ``idle_in_transaction_ms`` (PostgreSQL writers): the server ends a session that sits idle inside a
    transaction this long — a frozen or cut-off worker must not keep a lease row locked for the others.
    ``lock_timeout_ms`` (PostgreSQL writers): a statement waiting this long for a row lock fails
    (LockNotAvailable, an OperationalError the callers already retry) instead of waiting for ever — the
    holder may be a session whose client is gone while the server has not noticed (docs/cluster.md).
    """
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_read_only_engine(url) if read_only else _sqlite_engine(url)
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        # keepalives and tcp_user_timeout: a dead peer is noticed in seconds instead of hours
        args: dict[str, Any] = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
                                "keepalives_interval": 3, "keepalives_count": 3, "tcp_user_timeout": 20_000}
        options = []
        if read_only:
            options.append("-c default_transaction_read_only=on")
        if idle_in_transaction_ms:
            options.append(f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_ms)}")
        if lock_timeout_ms:
            options.append(f"-c lock_timeout={int(lock_timeout_ms)}")
        if options:
            args["options"] = " ".join(options)
        cache_long_psycopg_statements()
        return create_engine(u, hide_parameters=True, pool_pre_ping=True, pool_size=5, max_overflow=5,
                             pool_recycle=1800, connect_args=args)
    raise ConfigError(f"ledger.url: unsupported database {u.get_backend_name()!r} (use sqlite or postgresql)")


#: the longest statement psycopg's placeholder conversion keeps in its cache (see cache_long_psycopg_statements)
PSYCOPG_CACHED_STATEMENT_CHARS = 16_384


def cache_long_psycopg_statements() -> None:
    """Let psycopg cache the conversion of our long statements too.

    psycopg turns ``%(name)s`` placeholders into ``$n`` through an LRU cache (256 entries) that skips any
    statement over 4 096 characters (``psycopg._queries.MAX_CACHED_STATEMENT_LENGTH``, psycopg 3.1–3.3).
    The lanes' chained statement (:mod:`worker.ledger.chained`, ~5.5 KB with its casts) was parsed again
    at every receipt: ~0.2 ms of CPU each time, measured, against ~4 µs from the cache. A private
    constant: if a psycopg release renames it nothing breaks, the statement is only parsed again —
    tests/ledger/test_chained_pg.py checks that it is cached.
    """
    try:
        from psycopg import _queries
    except ImportError:   # psycopg not installed: there is no PostgreSQL ledger to talk to
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", PSYCOPG_CACHED_STATEMENT_CHARS) < PSYCOPG_CACHED_STATEMENT_CHARS:
        _queries.MAX_CACHED_STATEMENT_LENGTH = PSYCOPG_CACHED_STATEMENT_CHARS


def _sqlite_engine(url: str) -> Engine:
    u = make_url(url)
    if u.database and u.database != ":memory:":
        path = Path(u.database)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # create it 0600 ourselves: SQLite would honour the umask, and -wal/-shm inherit our mode
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module doc)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        stmt = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
        # straight to the driver: through exec_driver_sql this one statement cost as much CPU as a claim's
        # SELECT (a lane's every intent and outcome begins here); its errors are wrapped the same way
        try:
            conn.connection.dbapi_connection.execute(stmt)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(stmt, None, exc, sqlite3.Error) from exc

    return engine


#: one lock per SQLite ledger file in this process (see writer_lock)
_SQLITE_WRITERS: dict[str, "SqliteWriterLock | threading.RLock"] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


class SqliteWriterLock:
    """The writer lock of one SQLite ledger file: a thread lock in this process, and ``flock`` on a file
    beside the ledger (``<ledger>-writer.lock``) across processes.

    Held from before ``BEGIN IMMEDIATE`` to after ``COMMIT``, so writers in different processes — the
    worker's lanes and its ingest process (worker.ingest.process), an admin command — queue in the kernel
    and the next one is woken the moment the lock is let go, instead of sleeping in SQLite's busy handler.
    Re-entrant in one thread (the flock is taken once, by the outermost hold). A forked child opens its own
    descriptor: a flock belongs to the open file, and a child sharing its parent's would share the lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (both levels); False if *blocking* is off and a thread or process holds it."""
        if not self._thread_lock.acquire(blocking):
            return False
        if self._depth == 0:
            try:
                # blocks in C, the GIL released; non-blocking: BlockingIOError while another process holds it
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._thread_lock.release()
                return False
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1
        return True

    def release(self) -> None:
        """Let go of one hold; the last one unlocks the file."""
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def __enter__(self) -> "SqliteWriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_lock(engine: Engine) -> contextlib.AbstractContextManager[Any]:
    """What a write transaction holds, besides the database's own lock.

    SQLite has one writer; a second writer that finds the lock taken does not queue — SQLite's busy
    handler *sleeps* 1, 2, 5, 10 … up to 100 ms and tries again. With the group-commit writer, lease
    renewals, lane states and ingest, those sleeps became most of the time a lane waited for its intent
    (issue 10: the farm's 200 lanes). Writers therefore take a lock first and wait on it instead, woken
    the moment the previous transaction ends: :class:`SqliteWriterLock` for a ledger file (threads and
    processes), a thread lock for an in-memory one; the busy timeout stays as the last resort for a writer
    that does not take the lock. PostgreSQL: no lock (row locks, many writers).
    """
    u = engine.url
    if u.get_backend_name() != "sqlite":
        return contextlib.nullcontext()
    with _SQLITE_WRITERS_GUARD:
        if not u.database or u.database == ":memory:":
            return _SQLITE_WRITERS.setdefault(f"memory:{id(engine)}", threading.RLock())
        path = Path(u.database).resolve()
        lock_file = path.with_name(path.name + "-writer.lock")
        return _SQLITE_WRITERS.setdefault(str(path), SqliteWriterLock(lock_file))


def _sqlite_read_only_engine(url: str) -> Engine:
    """SQLite opened ``mode=ro`` (``immutable=1`` where the directory is not writable: read-only media,
    where SQLite could not even create the WAL's shared-memory file)."""
    path = make_url(url).database
    if not path or path == ":memory:" or not Path(path).is_file():
        raise ConfigError(f"ledger.url: no ledger file at {path!r} (read commands never create one)")
    flag = "mode=ro" if os.access(Path(path).resolve().parent, os.W_OK) else "immutable=1"
    uri = f"file:{quote(str(Path(path).resolve()))}?{flag}"
    engine = create_engine("sqlite+pysqlite://", hide_parameters=True,
                           creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False,
                                                           timeout=SQLITE_BUSY_TIMEOUT_MS / 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def sqlite_durability(engine: Engine) -> dict[str, Any]:
    """The pragmas in force (checked by ``kkt-worker check`` and the tests)."""
    with engine.connect() as conn:
        return {
            "journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
            "synchronous": conn.exec_driver_sql("PRAGMA synchronous").scalar(),
            "busy_timeout": conn.exec_driver_sql("PRAGMA busy_timeout").scalar(),
        }
