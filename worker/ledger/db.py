"""Opening the ledger database: SQLite (default) or PostgreSQL, with the durability settings.

SQLite: WAL, ``synchronous=FULL`` (a WAL commit under NORMAL may roll back after a power loss —
that would erase an intent while its receipt exists), a busy timeout, ``BEGIN IMMEDIATE`` for
every write transaction (a deferred transaction that upgrades to a writer gets SQLITE_BUSY at
once, ignoring the timeout), and the file created 0600 in a 0700 directory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from worker.defaults import SQLITE_BUSY_TIMEOUT_MS
from worker.errors import ConfigError

#: execution option that marks a read-only transaction (SQLite then uses a deferred BEGIN)
READ_ONLY = "kkt_read_only"


def create_ledger_engine(url: str) -> Engine:
    """An engine for the ledger at *url* with the settings above applied."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        # keepalives and tcp_user_timeout: a dead peer is noticed in seconds instead of hours
        return create_engine(u, hide_parameters=True, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_recycle=1800,
                             connect_args={"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
                                           "keepalives_interval": 3, "keepalives_count": 3,
                                           "tcp_user_timeout": 20_000})
    raise ConfigError(f"ledger.url: unsupported database {u.get_backend_name()!r} (use sqlite or postgresql)")


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
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def sqlite_durability(engine: Engine) -> dict[str, Any]:
    """The pragmas in force (checked by ``kkt-worker check`` and the tests)."""
    with engine.connect() as conn:
        return {
            "journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
            "synchronous": conn.exec_driver_sql("PRAGMA synchronous").scalar(),
            "busy_timeout": conn.exec_driver_sql("PRAGMA busy_timeout").scalar(),
        }
