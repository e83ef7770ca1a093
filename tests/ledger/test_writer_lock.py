"""Writers of one process queue on a lock instead of SQLite's busy handler (issue 10: the farm)."""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from worker.ledger.db import writer_lock
from worker.ledger.store import Ledger


def test_sqlite_writers_of_one_process_share_one_lock_per_ledger_file(tmp_path: Path) -> None:
    """Given two ledgers on one SQLite file and one on another, then the first two share the lock and
    the third has its own; while one thread is inside a write transaction, another thread cannot take
    the lock (it would wait on it, not sleep in SQLite's busy handler)."""
    a, b = Ledger(f"sqlite:///{tmp_path / 'l.db'}"), Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    other = Ledger(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert a.write_lock is b.write_lock and a.write_lock is not other.write_lock
        inside, release = threading.Event(), threading.Event()

        def writer() -> None:
            with a.write() as conn:
                conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
                inside.set()
                release.wait(10)

        t = threading.Thread(target=writer)
        t.start()
        assert inside.wait(10)
        taken: list[bool] = []
        probe = threading.Thread(target=lambda: taken.append(b.write_lock.acquire(blocking=False)))
        probe.start()
        probe.join(10)
        assert taken == [False]
        release.set()
        t.join(10)
        with b.write() as conn:   # free again once the transaction ended
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        for led in (a, b, other):
            led.dispose()


def test_postgresql_writers_take_no_process_lock(postgres_url) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL has many writers (row locks): no lock is taken in the process."""
    led = Ledger(postgres_url.render_as_string(hide_password=False))
    try:
        assert isinstance(writer_lock(led.engine), contextlib.nullcontext)
    finally:
        led.dispose()
