"""One worker per ledger: a second ``run`` (or ``reconcile``) on the same ledger refuses to start.

Two senders on one register could each print a receipt for the same payment, so this is part of
exactly-once. SQLite ledger: ``flock`` on ``<ledger>.lock`` (released by the kernel when the
process dies, even by SIGKILL). PostgreSQL: a session advisory lock on a dedicated connection
(released when the session ends).

Cluster mode (``cluster.enabled``, PostgreSQL only, docs/cluster.md): every ``run`` takes the same
advisory lock *shared*, so any number of cluster workers run together, while a worker without
cluster mode (or ``reconcile``) still takes it exclusively and is refused next to a running cluster —
and a cluster worker is refused next to a single worker. What keeps two cluster workers off one
register is the register lease, not this lock.

The run lock is the coarse first guard, not the fence: a PostgreSQL session can end under a live
worker (a dropped link, ``idle_session_timeout``), and then a second ``run`` gets the lock. The
register leases (:mod:`worker.ledger.leases`) fence every register write whatever happens to this
lock; :meth:`RunLock.check` notices a lost session, says so at ERROR and takes the lock again if free.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
import zlib
from types import TracebackType
from typing import Any

from sqlalchemy import text

from worker.errors import LockHeld
from worker.ledger.store import Ledger

LOCK_KEY = zlib.crc32(b"kkt-worker run lock")

log = logging.getLogger(__name__)


class RunLock:
    """Context manager holding the ledger's run lock."""

    def __init__(self, ledger: Ledger, *, shared: bool = False) -> None:
        self.ledger = ledger
        #: cluster mode: the PostgreSQL advisory lock is taken shared (SQLite refuses cluster mode in settings)
        self.shared = shared
        self._try = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        self._fd: int | None = None
        self._conn: Any = None
        self._pg = False            # True once a PostgreSQL advisory lock was taken
        #: True: held; False: its session ended (said once); None: another worker holds it (said once)
        self._held: bool | None = True
        self._lost_at: float | None = None   # monotonic time the session was found ended

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
            self._pg = True
            self._conn = engine.connect()
            got = self._conn.execute(text(f"SELECT {self._try}(:k)"), {"k": LOCK_KEY}).scalar()
            self._conn.commit()
            if not got:
                self._conn.close()
                if self.shared:
                    raise LockHeld("a kkt-worker without cluster mode holds the ledger's advisory lock: stop it, "
                                   "or set cluster.enabled on every worker of this ledger")
                raise LockHeld("another kkt-worker holds the ledger's advisory lock: one worker per ledger "
                               "(several workers on one PostgreSQL ledger: cluster.enabled, docs/cluster.md)")
        return self

    def check(self) -> bool:
        """PostgreSQL: whether the lock's session still lives; if it ended, log it and try to take the
        lock again. True while held. (SQLite: the kernel keeps the flock as long as we live.)

        Said once per episode: the session's end at ERROR, the lock taken again at WARNING. While the
        ledger stays away, each check raises the connection's error (the poll loop backs off and logs
        the outage once) and logs nothing more itself.
        """
        if not self._pg:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1")).scalar()
                self._conn.commit()
                if self._held:
                    return True
            except Exception as exc:
                self._session_ended(exc)
        if self._conn is None:
            self._conn = self.ledger.engine.connect()   # raises while the ledger is away
        try:
            got = bool(self._conn.execute(text(f"SELECT {self._try}(:k)"), {"k": LOCK_KEY}).scalar())
            self._conn.commit()
        except Exception as exc:
            self._session_ended(exc)
            raise
        if got:
            if not self._held:
                lost = f" after {time.monotonic() - self._lost_at:.0f} s" if self._lost_at is not None else ""
                log.warning("run lock taken again%s", lost)
            self._held, self._lost_at = True, None
        elif self._held is not None:
            log.error("another kkt-worker holds the run lock; this one goes on only where it holds register leases")
            self._held = None   # said once
        return got

    def _session_ended(self, exc: BaseException) -> None:
        """The lock's session is gone (or unusable): say so once, drop the connection."""
        if self._held:
            log.error("the run lock's database session ended (%s): another `run` may start now; the register "
                      "leases keep fencing every register write", type(exc).__name__)
            self._lost_at = time.monotonic()
            self._held = False
        else:   # already said (or never held): the poll loop reports the ledger's outage
            log.debug("run lock session still unavailable (%s)", type(exc).__name__)
        try:
            self._conn.close()
        except Exception:
            pass
        self._conn = None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self._conn is not None:
            # release it now: the server drops a closed session's locks only when its backend has gone,
            # which a next `run` (or a test) can beat
            try:
                unlock = "pg_advisory_unlock_shared" if self.shared else "pg_advisory_unlock"
                self._conn.execute(text(f"SELECT {unlock}(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
            except Exception:   # the session is gone already: so is its lock
                pass
            # a session advisory lock outlives a connection returned to the pool: end the session itself
            self._conn.invalidate()
            self._conn.close()
