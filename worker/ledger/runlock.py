"""One worker per ledger: a second ``run`` (or ``reconcile``) on the same ledger refuses to start.

Two senders on one register could each print a receipt for the same payment, so this is part of
exactly-once. SQLite ledger: ``flock`` on ``<ledger>.lock`` (released by the kernel when the
process dies, even by SIGKILL). PostgreSQL: a session advisory lock on a dedicated connection
(released when the session ends).
"""
from __future__ import annotations

import fcntl
import os
import zlib
from types import TracebackType
from typing import Any

from sqlalchemy import text

from worker.errors import LockHeld
from worker.ledger.store import Ledger

LOCK_KEY = zlib.crc32(b"kkt-worker run lock")


class RunLock:
    """Context manager holding the ledger's run lock."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._fd: int | None = None
        self._conn: Any = None

    def __enter__(self) -> "RunLock":
        engine = self.ledger.engine
        if engine.dialect.name == "sqlite":
            path = f"{engine.url.database}.lock"
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                os.close(self._fd)
                raise LockHeld(f"another kkt-worker holds {path}: one worker per ledger") from exc
        else:
            self._conn = engine.connect()
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            self._conn.commit()
            if not got:
                self._conn.close()
                raise LockHeld("another kkt-worker holds the ledger's advisory lock: one worker per ledger")
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self._conn is not None:
            self._conn.close()
