"""SQLite writers queue on a lock instead of SQLite's busy handler (issue 10): the threads of one process,
and the worker's processes (lanes, ingest) on a lock file beside the ledger."""
from __future__ import annotations

import contextlib
import subprocess
import sys
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


WRITER = """
import sys
import worker.ledger.db as db
db.SQLITE_BUSY_TIMEOUT_MS = 0   # no busy handler: a writer that found the database locked would fail at once
from worker.ledger.store import Ledger
led = Ledger(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with led.write() as conn:
        n = conn.exec_driver_sql("SELECT n FROM counter").scalar()
        conn.exec_driver_sql(f"UPDATE counter SET n = {n + 1}")
led.dispose()
"""


def test_writers_of_two_processes_queue_on_the_lock_file(tmp_path: Path) -> None:
    """Given two processes writing one SQLite ledger back to back (the worker's lanes and its ingest
    process) with SQLite's busy handler off, then no write fails with "database is locked" and none is
    lost: each waits for the other on the lock file beside the ledger, not in SQLite's busy handler (whose
    sleeps of 1…100 ms are what the lock replaces). With the in-process lock alone this fails at once."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    led = Ledger(url)
    with led.write() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (0)")
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, "300"], cwd=root, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0], errors
        with led.read() as conn:
            assert conn.exec_driver_sql("SELECT n FROM counter").scalar() == 600
        assert (tmp_path / "l.db-writer.lock").stat().st_mode & 0o777 == 0o600
    finally:
        led.dispose()


HOLDER = """
import sys
from worker.ledger.store import Ledger
led = Ledger(sys.argv[1])
with led.write():
    print("inside", flush=True)
    sys.stdin.readline()
"""


def test_a_write_in_another_process_holds_this_process_off(tmp_path: Path) -> None:
    """Given another process inside a write transaction, then this process cannot take the writer lock
    without waiting; once that transaction ended, it can."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    led = Ledger(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=Path(__file__).resolve().parents[2],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "inside"   # type: ignore[union-attr]
        assert led.write_lock.acquire(blocking=False) is False
        holder.communicate("\n", timeout=30)
        assert led.write_lock.acquire(blocking=False) is True
        led.write_lock.release()
    finally:
        holder.kill()
        holder.wait(10)
        led.dispose()
