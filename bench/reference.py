"""The references bench.pool's throughput figure is read against, measured in the same run: a bare durable
loop doing the worker's two commits per receipt on SQLite and on PostgreSQL, and the CPU of the stand-in
(emulated) register alone, so that the worker's own CPU per receipt can be told apart from it."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa


def raw_sqlite_loop(path: Path, n: int) -> float:
    """Receipts/s of a bare sqlite3 loop: intent commit + outcome commit per receipt, WAL, synchronous=FULL."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, state TEXT, register TEXT, fd_before INT, fd INT, "
                "body TEXT, t TEXT)")
    con.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, rid INT, started TEXT, outcome TEXT)")
    con.execute("CREATE INDEX a_rid ON a (rid)")
    con.executemany("INSERT INTO r (id, state, body) VALUES (?, 'queued', ?)", [(i, "x" * 400) for i in range(n)])
    t0 = time.perf_counter()
    for i in range(n):
        con.execute("BEGIN IMMEDIATE")
        rid = con.execute("SELECT id FROM r WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()[0]
        con.execute("UPDATE r SET state = 'sending', register = 'k', fd_before = ? WHERE id = ? AND state = 'queued'",
                    (i, rid))
        con.execute("INSERT INTO a (rid, started) VALUES (?, datetime('now'))", (rid,))
        con.execute("COMMIT")
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE r SET state = 'done', fd = ? WHERE id = ? AND state = 'sending'", (i + 1, rid))
        con.execute("UPDATE a SET outcome = 'done' WHERE rid = ?", (rid,))
        con.execute("COMMIT")
    rate = n / (time.perf_counter() - t0)
    con.close()
    return rate


def raw_pg_loop(url: str, n: int) -> float:
    """The same loop on PostgreSQL (psycopg, synchronous_commit on: each commit is flushed)."""
    import psycopg

    u = sa.make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database) as con:
        con.execute("CREATE TABLE r (id INT PRIMARY KEY, state TEXT, register TEXT, fd_before INT, fd INT, body TEXT)")
        con.execute("CREATE TABLE a (id SERIAL PRIMARY KEY, rid INT, started TIMESTAMP, outcome TEXT)")
        con.execute("CREATE INDEX a_rid ON a (rid)")
        with con.cursor() as cur:
            cur.executemany("INSERT INTO r (id, state, body) VALUES (%s, 'queued', %s)", [(i, "x" * 400) for i in range(n)])
        con.commit()
        t0 = time.perf_counter()
        for i in range(n):
            rid = con.execute("SELECT id FROM r WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
                              ).fetchone()[0]
            con.execute("UPDATE r SET state = 'sending', register = 'k', fd_before = %s WHERE id = %s", (i, rid))
            con.execute("INSERT INTO a (rid, started) VALUES (%s, now())", (rid,))
            con.commit()
            con.execute("UPDATE r SET state = 'done', fd = %s WHERE id = %s", (i + 1, rid))
            con.execute("UPDATE a SET outcome = 'done' WHERE rid = %s", (rid,))
            con.commit()
        return n / (time.perf_counter() - t0)


def register_cpu_ms_per_receipt(work: Path, n: int = 500) -> float:
    """CPU of the in-process emulated register alone per receipt (fiscalize, with a lane's step hook), measured
    here so that the worker's own CPU per receipt can be told apart from its stand-in register's."""
    from kkt_drivers import open_driver
    from tests.ledger.test_ledger import receipt

    drv = open_driver(f"emulator://{work / 'calib'}?serial=CALIB&fsync=0")
    drv.connect()
    drv.open_shift(None)
    # a lane always sets a step hook, which makes the emulator persist its state at every driver step
    # (so that a killed worker's register keeps what it did): that CPU is the register's, not the worker's
    drv.step_hook = lambda _step: None
    todo = [receipt(f"C{i}") for i in range(n)]   # built outside the timed loop: not the register's CPU
    t0 = time.process_time()
    for r in todo:
        drv.fiscalize(r)
    return (time.process_time() - t0) / n * 1000
