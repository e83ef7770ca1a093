"""The shop source over an SQLite file with the reference schema (the demo shop, tests).

The file is opened read-only (``mode=ro``), like the MySQL account: the worker never writes to the
shop. Money and quantities are stored as TEXT so they come back exact and become ``Decimal`` on
read (SQLite's REAL is a binary float). Text that is not valid UTF-8 comes back as ``bytes``.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from worker.shop.source import SourceConfigError, SourceError, SourceMapping, SourceUnavailable, SqlShopSource

BUSY_TIMEOUT_S = 5  # wait this long for a writer (e.g. add_demo_payment) to finish its commit


def _text_factory(raw: bytes) -> str | bytes:
    # sqlite3's default decoding raises on invalid UTF-8 and would fail the whole batch.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


class SQLiteSource(SqlShopSource):
    """Shop source over an SQLite file (``sqlite:///path/to/shop.db``)."""

    quote_char = '"'
    ids_chunk = 500  # below SQLITE_MAX_VARIABLE_NUMBER (999) of SQLite builds older than 3.32

    def __init__(self, path: str | Path, mapping: SourceMapping | None = None, *,
                 busy_timeout: float = BUSY_TIMEOUT_S, timezone: str | None = None) -> None:
        """Open ``path`` read-only (lazily: a missing file is reported by the first call)."""
        self._path = Path(path)
        uri = f"file:{quote(str(self._path.resolve()))}?mode=ro"
        engine = sa.create_engine(
            "sqlite+pysqlite://",
            hide_parameters=True,
            creator=lambda: sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False),
            poolclass=sa.NullPool,  # a file open per call is cheap and never holds a stale snapshot
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.text_factory = _text_factory

        super().__init__(engine, mapping or SourceMapping(), timezone)

    def _translate(self, exc: Exception) -> SourceError:
        orig = getattr(exc, "orig", None) or exc
        message = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
        detail = f"sqlite {self._path}: {message}"
        if "locked" in message or "busy" in message:
            return SourceUnavailable(detail)
        if isinstance(orig, sqlite3.OperationalError):
            # no such table / column, unable to open database file, not a database: operator's job
            return SourceConfigError(detail)
        if isinstance(orig, sqlite3.DatabaseError):
            return SourceConfigError(detail)
        return SourceError(detail)

    def __repr__(self) -> str:
        return f"SQLiteSource({str(self._path)!r})"
