"""bench/wal.py counts what SQLite appended to a real WAL file, across a checkpoint that restarts it."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.wal import WalCounter, read_wal


def _db(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")   # the test decides when the log restarts
    con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    return con


def test_commits_and_frames_are_counted_as_sqlite_appends_them(tmp_path: Path) -> None:
    """Three one-row transactions on a one-page table: three commit frames, one page each."""
    con = _db(tmp_path / "a.db")
    wal = tmp_path / "a.db-wal"
    counter = WalCounter(wal)
    for i in range(3):
        con.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
    counter.poll()
    assert (counter.frames, counter.commits, counter.restarts) == (3, 3, 0)
    assert counter.bytes_written == 3 * (24 + read_wal(wal).page_size)


def test_a_restarted_log_is_counted_from_its_start_not_by_the_file_size(tmp_path: Path) -> None:
    """After a checkpoint the next transaction overwrites the log's first frames: the file does not grow,
    the counter still sees the new commit."""
    con = _db(tmp_path / "a.db")
    wal = tmp_path / "a.db-wal"
    for i in range(5):
        con.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
    counter = WalCounter(wal)
    size = wal.stat().st_size
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    con.execute("INSERT INTO t (v) VALUES ('after the checkpoint')")
    counter.poll()
    assert wal.stat().st_size == size   # what the old figure (file growth) saw: nothing
    assert (counter.frames, counter.commits, counter.restarts) == (1, 1, 1)


def test_a_transaction_of_several_pages_is_one_commit(tmp_path: Path) -> None:
    con = _db(tmp_path / "a.db")
    counter = WalCounter(tmp_path / "a.db-wal")
    con.execute("BEGIN")
    # ~20 KB: several pages
    con.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 500,) for _ in range(40)])
    con.execute("COMMIT")
    counter.poll()
    assert counter.commits == 1 and counter.frames > 3
