"""The lanes' hot statements, compiled once by SQLAlchemy and executed on the driver's cursor.

A receipt costs the ledger about seven statements (fence check, outcome, attempt, watermark, the next
claim's head, its UPDATE and attempt) on SQLite; on PostgreSQL they are chained into one
(:mod:`worker.ledger.chained`). Through ``Connection.execute`` each cost ~40 µs of Python —
execution context, parameter processing, result metadata — against ~3 µs for the driver's own
``cursor.execute``: most of a receipt's ledger CPU (issue 10's target is ≤ 1 ms per receipt in all).

:func:`run` keeps what SQLAlchemy is good at — the statement is written with SQLAlchemy Core and
compiled by the dialect, parameters and results go through the columns' own type processors (SQLite
datetimes as text, money as Decimal) — and skips the per-execution machinery. It runs inside the
caller's SQLAlchemy transaction (same DBAPI connection), and wraps driver errors in SQLAlchemy's
``DBAPIError`` exactly as ``Connection.execute`` would (a lost PostgreSQL link also invalidates the
connection), so callers handle failures one way. Only for statements without post-compile or
expanding parameters (checked when a statement is first prepared).

:func:`reading` is the matching read transaction: a pooled DBAPI connection (the pool still pre-pings
it on PostgreSQL and resets it on return), a plain deferred ``BEGIN`` on SQLite — what
:meth:`~worker.ledger.base.LedgerBase.read` gets through ``Connection.begin`` and the ``begin`` event
(:mod:`worker.ledger.db`) — and the driver's own implicit transaction on PostgreSQL (READ COMMITTED,
as through SQLAlchemy), committed at the end. A lane starting up reads its watermark, its lease and its
"sending" receipts about seven times (issue 10: 200 lanes starting at once); ``Engine.connect`` +
``begin`` + the events cost more CPU than those reads themselves.
"""
from __future__ import annotations

import datetime as dt
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, Union

from sqlalchemy import Column, Connection, Engine, Table, bindparam, insert
from sqlalchemy.dialects.sqlite import base as sqlite_base
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

Processor = Callable[[Any], Any] | None


class Prepared:
    """One statement compiled for one dialect: its SQL text, its parameters in order, its processors."""

    def __init__(self, stmt: Executable, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        if "POSTCOMPILE" in self.sql or any(b.expanding for b in compiled.binds.values()):
            raise ValueError(f"fastpath: statement needs post-compile parameters: {self.sql[:80]}")
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            # a column default computed in Python by SQLAlchemy's execution context: not run here
            raise ValueError(f"fastpath: statement needs Python-side column defaults: {self.sql[:80]}")
        self.positional: bool = bool(compiled.positional)
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        # positional: in the order of the placeholders (a name may repeat); named: each name once
        names: Sequence[str] = compiled.positiontup if self.positional else list(by_name)  # type: ignore[assignment]
        self._params: list[tuple[str, Any, bool, Processor]] = []
        for name in names:
            bind = by_name[name]
            # a literal in the statement (``state = 'queued'``) is a bind with a value; ours are required
            self._params.append((name, bind.value, bind.required, _bind_processor(bind.type, dialect)))
        columns = list(getattr(stmt, "selected_columns", ()) or ())
        returning = getattr(stmt, "_returning", ()) or ()
        cols = columns or list(returning)
        self.keys: tuple[str, ...] = tuple(c.key for c in cols)
        self._types = [c.type.dialect_impl(dialect) for c in cols]
        self._dialect = dialect
        #: the columns' result processors, made from the first result's description (the driver's type
        #: codes: PostgreSQL's numeric processor depends on the column's OID)
        self._results: list[Processor] | None = None
        self._any_result_processor = True

    def parameters(self, params: dict[str, Any]) -> Any:
        """The driver's parameters (a tuple for qmark/format, a dict for named/pyformat)."""
        out = []
        for name, default, required, proc in self._params:
            if name in params:
                value = params[name]
            elif required:
                raise KeyError(f"fastpath: parameter {name!r} missing for {self.sql[:60]}")
            else:
                value = default
            out.append(proc(value) if proc is not None and value is not None else value)
        if self.positional:
            return tuple(out)
        return {name: value for (name, *_), value in zip(self._params, out)}

    def rows(self, cursor: Any) -> list[tuple[Any, ...]]:
        """The cursor's rows with the columns' result processors applied."""
        raw = cursor.fetchall()
        if self._results is None:   # the description is read once (psycopg builds it anew at each access)
            self._results = [t.result_processor(self._dialect, d[1]) for t, d in zip(self._types, cursor.description)]
            self._any_result_processor = any(p is not None for p in self._results)
        if not self._any_result_processor:
            return [tuple(r) for r in raw]
        procs = self._results
        return [tuple(p(v) if p is not None else v for p, v in zip(procs, r)) for r in raw]


def _bind_processor(type_: Any, dialect: Dialect) -> Processor:
    """The type's bind processor for *dialect*; for SQLite's DATETIME in its default storage format, one
    that writes the same text ~2.5× faster (``isoformat``: 0.8 against 2.0 µs, measured; a SQLite
    receipt binds some 30 datetimes across ingest and lane, ~4 % of a SQLite backlog's GIL samples)."""
    impl = type_.dialect_impl(dialect)
    proc = impl.bind_processor(dialect)
    # _storage_format is SQLAlchemy's private name for the text format: if a release renames it, the
    # defaults differ and SQLAlchemy's own processor is used
    if proc is None or dialect.name != "sqlite" or type(impl) is not sqlite_base.DATETIME \
            or getattr(impl, "_storage_format", None) != getattr(sqlite_base.DATETIME, "_storage_format", ""):
        return proc
    general = proc

    def process(value: Any) -> Any:
        # "YYYY-MM-DD HH:MM:SS.ffffff" either way (tests/ledger/test_fastpath.py compares them); an aware
        # datetime or a date goes to SQLAlchemy's own, which drops the zone / adds midnight as before
        if type(value) is dt.datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return general(value)

    return process


#: (id of the statement, dialect) → (the statement, its Prepared); keeping the statement alive keeps its id
#: from being reused by another object
_PREPARED: dict[tuple[int, str], tuple[Executable, Prepared]] = {}
_PREPARED_GUARD = threading.Lock()


def prepared(stmt: Executable, dialect: Dialect) -> Prepared:
    """*stmt* compiled for *dialect*, once per process (meant for module-level statements)."""
    key = (id(stmt), dialect.name)
    found = _PREPARED.get(key)
    if found is None:
        with _PREPARED_GUARD:
            found = _PREPARED.get(key)
            if found is None:
                found = _PREPARED[key] = (stmt, Prepared(stmt, dialect))
    return found[1]


class Result:
    """What :func:`run` returns: the rows it fetched (for SELECT/RETURNING) and the rowcount."""

    __slots__ = ("keys", "rows", "rowcount")

    def __init__(self, keys: tuple[str, ...], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.keys, self.rows, self.rowcount = keys, rows, rowcount

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def mapping(self) -> dict[str, Any] | None:
        """The first row as {column key: value}, or None."""
        return dict(zip(self.keys, self.rows[0])) if self.rows else None


_CURSOR = "kkt_fastpath_cursor"   # key in the pooled connection's info: one reused cursor per DBAPI connection


class Tx:
    """A read transaction on a pooled DBAPI connection (see :func:`reading`); :func:`run` takes it where
    it takes a SQLAlchemy ``Connection``."""

    __slots__ = ("dialect", "connection")

    def __init__(self, dialect: Dialect, pooled: Any) -> None:
        self.dialect = dialect
        self.connection = pooled   # the pool's proxy: .dbapi_connection, .info, .invalidate()

    def invalidate(self, exc: BaseException) -> None:
        """Never hand this DBAPI connection out again (the link is gone)."""
        self.connection.invalidate(exc)


@contextmanager
def reading(engine: Engine) -> Iterator[Tx]:
    """One read transaction on *engine* for :func:`run`, committed on a clean exit, rolled back otherwise.

    SQLite: a deferred ``BEGIN`` (a reader never takes the write lock; WAL gives it a snapshot from its
    first read). PostgreSQL: the driver opens its transaction at the first statement, READ COMMITTED
    unless the server or the connection says otherwise (``default_transaction_read_only`` of a read-only
    engine still applies), exactly as through ``Connection.begin``. Driver errors arrive as SQLAlchemy's
    ``DBAPIError`` (a lost link also invalidates the connection), as through ``Engine.connect``.
    """
    dialect = engine.dialect
    try:
        pooled = engine.raw_connection()   # checkout: the pool pre-pings where the engine asks for it
    except dialect.loaded_dbapi.Error as exc:
        raise _wrapped(dialect, None, None, exc, invalidated=dialect.is_disconnect(exc, None, None)) from exc
    tx = Tx(dialect, pooled)
    try:
        if dialect.name == "sqlite":
            _driver_call(tx, "BEGIN", lambda: pooled.dbapi_connection.execute("BEGIN"))
        yield tx
        _driver_call(tx, "COMMIT", pooled.dbapi_connection.commit)
    except BaseException:
        try:
            if tx.connection.dbapi_connection is not None:   # None once invalidated
                pooled.dbapi_connection.rollback()
        except dialect.loaded_dbapi.Error:   # a dead link: the error that matters is being raised
            pass
        raise
    finally:
        pooled.close()   # back to the pool (reset there), or discarded if invalidated


def _driver_call(tx: Tx, what: str, call: Callable[[], Any]) -> None:
    """*call* (BEGIN, COMMIT) with its driver error wrapped like :func:`run`'s."""
    try:
        call()
    except tx.dialect.loaded_dbapi.Error as exc:
        raise _driver_error(tx, exc, what, None) from exc


def _driver_error(conn: Union[Connection, Tx], exc: Exception, sql: str | None, args: Any,
                  cursor: Any = None) -> DBAPIError:
    """*exc* as ``Connection.execute`` would raise it: a ``DBAPIError``, and a lost link invalidates
    *conn*'s DBAPI connection first (the pool never hands it out again)."""
    dialect = conn.dialect
    invalidated = dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if invalidated:
        conn.invalidate(exc)
    return _wrapped(dialect, sql, args, exc, invalidated=invalidated)


def _wrapped(dialect: Dialect, sql: str | None, args: Any, exc: Exception, *, invalidated: bool) -> DBAPIError:
    return DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
                               dialect=dialect, connection_invalidated=invalidated)


def run(conn: Union[Connection, Tx], stmt: Executable, params: dict[str, Any]) -> Result:
    """Execute *stmt* with *params* on *conn*'s DBAPI connection, inside its current transaction
    (a SQLAlchemy ``Connection`` in a transaction, or a :class:`Tx` from :func:`reading`).

    The cursor is kept with the pooled connection and reused (creating one per statement was a visible
    part of a PostgreSQL receipt's CPU); after any error it is dropped and the next call makes a new one.
    """
    dialect = conn.dialect
    p = prepared(stmt, dialect)
    args = p.parameters(params)
    pooled = conn.connection
    cursor = None
    try:
        cursor = pooled.info.get(_CURSOR)
        if cursor is None:
            cursor = pooled.info[_CURSOR] = pooled.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(p.sql, args)
        rows = p.rows(cursor) if p.keys else []
        return Result(p.keys, rows, cursor.rowcount)
    except dialect.loaded_dbapi.Error as exc:
        _drop_cursor(pooled, dialect)
        raise _driver_error(conn, exc, p.sql, args, cursor) from exc
    except BaseException:
        _drop_cursor(pooled, dialect)
        raise


def _drop_cursor(pooled: Any, dialect: Dialect) -> None:
    cursor = pooled.info.pop(_CURSOR, None)
    if cursor is not None:
        try:
            cursor.close()
        except dialect.loaded_dbapi.Error:   # a dead link: the error that matters is being raised
            pass


#: (table, its RETURNING columns, the rows' keys) → the single-row INSERT :func:`insert_many` runs
_INSERTS: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Executable] = {}


def insert_many(conn: Connection, table: Table, returning: Sequence[Column[Any]],
                rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """INSERT *rows* (dicts with the same keys) into *table*; the *returning* columns of every row, in no
    promised order (callers map them by a returned key).

    One single-row statement, compiled once, run for every row on the driver's cursor — not SQLAlchemy's
    "insertmanyvalues", a multi-row VALUES statement of ~25 placeholders a row built per batch:
    * PostgreSQL: psycopg's ``executemany(..., returning=True)`` (pipeline mode, prepared once). psycopg
      converted the multi-row statement's placeholders to ``$n`` afresh for every batch (its cache skips
      long statements): 14 % of a PostgreSQL backlog's GIL samples (py-spy, bench.pool). 500-row batches
      of a 22-column table: 0.19 → 0.06 ms of client CPU per row, 0.23 → 0.07 ms wall.
    * SQLite: ``execute`` per row (sqlite3 keeps the prepared statement in its cache; its executemany
      returns no rows). No faster than SQLAlchemy's batch here (bench.ingest: 0.241 → 0.236 ms per
      payment, noise); it keeps one statement form and the same column check for both ledgers.
    Errors arrive as SQLAlchemy's ``DBAPIError``, as :func:`run`'s do.
    """
    if not rows:
        return []
    dialect = conn.dialect
    keys = tuple(rows[0])
    if any(len(r) != len(keys) for r in rows):   # with parameters()' KeyError: every row has the same keys
        raise ValueError(f"fastpath: rows for {table.name} differ in their columns")
    key = (table.name, tuple(c.key for c in returning), keys)
    stmt = _INSERTS.get(key)
    if stmt is None:
        values = {k: bindparam(k, type_=table.c[k].type) for k in keys}
        stmt = _INSERTS.setdefault(key, insert(table).values(values).returning(*returning))
    p = prepared(stmt, dialect)
    args = [p.parameters(r) for r in rows]
    pooled = conn.connection
    cursor = pooled.dbapi_connection.cursor()  # type: ignore[union-attr]
    out: list[tuple[Any, ...]] = []
    try:
        if dialect.name == "postgresql":
            cursor.executemany(p.sql, args, returning=True)
            while True:   # one result set per row
                out += p.rows(cursor)
                if not cursor.nextset():
                    return out
        for a in args:
            cursor.execute(p.sql, a)
            out += p.rows(cursor)
        return out
    except dialect.loaded_dbapi.Error as exc:
        raise _driver_error(conn, exc, p.sql, None, cursor) from exc
    finally:
        cursor.close()
