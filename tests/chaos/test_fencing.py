"""Fencing: never two writers on one register, whatever happens to the ledger link.

PostgreSQL ledger through the fault proxy (the link drops; the server ends idle sessions), admin
commands next to a live worker, and a ledger disk that fills up. The ground truth is the emulated
register's journal; every scenario ends with the invariants of tests/chaos/invariants.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa

from tests.chaos.faultproxy import FaultProxy
from tests.chaos.invariants import check
from tests.shop import (cli_env, dump_threads, insert_payment, journal, run_cli, sale_items, start_cli, stop_worker,
                        thread_dump, write_settings)

pytestmark = pytest.mark.chaos

LEASE_TTL_S = 4


def wait_until(pred: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout} s")


def scalar(url: str, sql: str) -> int:
    eng = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql)).scalar() or 0
    except sa.exc.OperationalError:
        return -1
    finally:
        eng.dispose()


def done(url: str) -> int:
    return scalar(url, "SELECT COUNT(*) FROM receipts WHERE state = 'done'")


def add(shop: sa.URL, n: int) -> None:
    with sa.create_engine(shop, poolclass=sa.NullPool).begin() as conn:
        for _ in range(n):
            insert_payment(conn, sale_items(2))


def settings_for(path: Path, shop: sa.URL, ledger_url: str, reg: Path, **sections) -> Path:
    path.parent.mkdir(exist_ok=True)
    return write_settings(path, source_url=shop.render_as_string(hide_password=False), ledger_url=ledger_url,
                          registers=[("kkt1", f"emulator://{reg}?latency_ms=20")],
                          lease={"ttl_s": LEASE_TTL_S}, retry={"device_pause_s": 0.3, "source_backoff_max_s": 1},
                          **sections)


def start_second(settings: Path, log_path: Path, deadline_s: float = 60) -> subprocess.Popen[str]:
    """Start a second `run` the way a supervisor would (systemd Restart=): again while it exits because
    the first still holds the run lock; return it once its lanes have started."""
    end = time.monotonic() + deadline_s
    while True:
        proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(settings), "run"], cwd=settings.parent,
                                env=cli_env(), stdout=subprocess.DEVNULL, stderr=log_path.open("w"), text=True)
        wait_until(lambda: proc.poll() is not None or "lane started" in log_path.read_text(), 60, "second run")
        if proc.poll() is None:
            return proc
        assert "advisory lock" in log_path.read_text() and time.monotonic() < end, log_path.read_text()[-2000:]


#: a worker whose ledger link is dead may take three ledger timeouts (~20 s each) to give up recording an
#: outcome before it exits (the receipt then stays "sending" for the next start): allow for that under load
STOP_TIMEOUT_S = 150


def stop(proc: subprocess.Popen[str], log_path: Path | None = None) -> str:
    """A warm stop; a worker that does not stop in time fails the test with its thread dump."""
    return stop_worker(proc, STOP_TIMEOUT_S, log_path)


def test_link_drop_then_a_second_worker_never_two_writers(shop_schema: sa.URL, postgres_url: sa.URL,
                                                          tmp_path: Path) -> None:
    """Worker A's link to the PostgreSQL ledger drops (its advisory lock dies with the session); worker B
    starts, waits for A's lease to expire by the server's clock, takes it with a new epoch and adopts
    what A printed; the link comes back: A's writes fail the epoch check, A stands by. 0 duplicates."""
    reg = tmp_path / "reg"
    direct = postgres_url.render_as_string(hide_password=False)
    with FaultProxy(postgres_url.host, postgres_url.port) as proxy:
        via_proxy = postgres_url.set(port=proxy.port).render_as_string(hide_password=False)
        sa_ = settings_for(tmp_path / "a" / "settings.yaml", shop_schema, via_proxy, reg)
        sb = settings_for(tmp_path / "b" / "settings.yaml", shop_schema, direct, reg)
        run_cli(sa_, "migrate")
        add(shop_schema, 80)
        a = start_cli(sa_, "run")
        b = None
        log_b = tmp_path / "b" / "stderr.log"
        try:
            wait_until(lambda: done(direct) >= 10, 30, "A printing")
            proxy.outage()
            # the server ends the dropped session (in production: its TCP keepalive gives up), and the
            # advisory lock dies with it; here at once, not after the proxy's RST races with the backend
            with sa.create_engine(direct, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT").connect() as conn:
                # only this test's database: pg_locks is server-wide, and tests run side by side (pytest -n)
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                                     "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
            b = start_second(sb, log_b)
            took = wait_until(lambda: scalar(direct, "SELECT epoch FROM register_leases") >= 2, 30, "B's takeover")
            proxy.restore()
            add(shop_schema, 20)
            wait_until(lambda: done(direct) == 100, 120, "all done")
            assert a.poll() is None and b.poll() is None
        except AssertionError:
            for proc in (a, b):
                if proc is not None:
                    dump_threads(proc)   # what each waits for, on its stderr
            with sa.create_engine(direct, poolclass=sa.NullPool).connect() as conn:
                print("LOCKS:", conn.execute(sa.text(
                    "SELECT a.pid, a.client_port, a.state, a.backend_start, a.query FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'")).all())
            text_a = stop(a)
            text_b = log_b.read_text() if log_b.exists() else ""
            print("A:", thread_dump(text_a), text_a[-3000:], "\nB:", thread_dump(text_b), text_b[-3000:])
            raise
        finally:
            err_a = stop(a)
            if b is not None:
                stop(b, log_b)
            err_b = log_b.read_text() if log_b.exists() else ""
    report = check(shop_schema, direct, [reg])
    print(json.dumps({"takeover_s": round(took, 1), **report.summary()}))
    assert report.ok and report.done == 100 and not report.duplicates, (report.summary(), err_a[-3000:])
    assert "lease taken: epoch 2" in err_b
    assert "lease lost" in err_a or "standing by" in err_a, err_a[-3000:]


def test_server_ends_idle_sessions_admin_commands_refused(shop_schema: sa.URL, postgres_url: sa.URL,
                                                           postgres_admin_url: sa.URL, tmp_path: Path) -> None:
    """idle_session_timeout = 3 s on the ledger database ends the run lock's idle session; a second
    `run` then starts, but stands by while the first holds the register's lease; `reconcile`, `shift`
    and `report x` are refused naming the holder. When the first stops, the second takes over. 0 duplicates."""
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{postgres_url.database}" SET idle_session_timeout = \'3s\'')
    admin.dispose()
    reg = tmp_path / "reg"
    direct = postgres_url.render_as_string(hide_password=False)
    sa_ = settings_for(tmp_path / "a" / "settings.yaml", shop_schema, direct, reg)
    sb = settings_for(tmp_path / "b" / "settings.yaml", shop_schema, direct, reg)
    run_cli(sa_, "migrate")
    add(shop_schema, 30)
    a = start_cli(sa_, "run")
    b = None
    log_b = tmp_path / "b" / "stderr.log"
    log_b.write_text("")
    try:
        wait_until(lambda: done(direct) == 30, 60, "A printing")
        # the run lock's session sits idle > 3 s and the server ends it; A takes the lock again at its next
        # check, so a second `run` (restarted by its supervisor, like systemd's Restart=) gets in between
        b = start_second(sb, log_b)
        wait_until(lambda: "standing by" in log_b.read_text(), 30, "B standing by")
        for cmd in (("reconcile",), ("shift", "status"), ("shift", "open"), ("report", "x")):
            out = run_cli(sb, *cmd, check=False)
            # reconcile also takes the run lock, which one of the two workers may hold at this moment
            refused = "is held by worker@" in out.stderr or (cmd == ("reconcile",) and "advisory lock" in out.stderr)
            assert out.returncode != 0 and refused, (cmd, out.stderr[-2000:])
        add(shop_schema, 20)
        wait_until(lambda: done(direct) == 50, 60, "A printing on")
        err_a = stop(a)                          # A gives its lease back; B takes over
        add(shop_schema, 10)
        wait_until(lambda: done(direct) == 60, 60, "B printing")
    except AssertionError:
        print("A:", stop(a)[-4000:], "\nB:", log_b.read_text()[-6000:] if b is not None else "")
        raise
    finally:
        err_a = stop(a)
        if b is not None:
            stop(b, log_b)
        err_b = log_b.read_text()
    report = check(shop_schema, direct, [reg])
    print(json.dumps(report.summary()))
    assert report.ok and report.done == 60 and not report.duplicates, report.summary()
    assert "run lock's database session ended" in err_a, err_a[-3000:]
    assert "standing by" in err_b and "lease taken" in err_b, err_b[-3000:]


def test_ledger_disk_full_outcome_first_nothing_lost(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Recording an outcome fails 3 times with "database or disk is full" after the register printed:
    logged at ERROR with the requisites and retried until it is recorded. A short ledger disk pauses
    ingest (status shows the free space) while receipts already queued are still printed."""
    reg = tmp_path / "reg"
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    free = tmp_path / "free_mb"
    free.write_text("5000")
    settings = settings_for(tmp_path / "settings.yaml", shop_schema, ledger, reg, ledger={"min_free_mb": 100})
    run_cli(settings, "migrate")
    env = cli_env(KKT_FAILPOINT="record_outcome:3", KKT_TEST_FREE_MB_FILE=str(free))
    worker = start_cli(settings, "run", env=env)
    try:
        add(shop_schema, 3)
        wait_until(lambda: done(ledger) == 3, 60, "first receipts")
        free.write_text("20")                                # the disk runs short
        time.sleep(1.5)
        add(shop_schema, 4)
        time.sleep(3)
        assert scalar(ledger, "SELECT COUNT(*) FROM payments") == 3, "ingest must pause on a short disk"
        status = run_cli(settings, "status", env=env).stdout
        assert "ingest: PAUSED (ledger disk 20 MB free" in status
        free.write_text("5000")
        wait_until(lambda: done(ledger) == 7, 60, "ingest resumed")
    finally:
        err = stop(worker)
    report = check(shop_schema, ledger, [reg])
    print(json.dumps(report.summary()))
    assert report.ok and report.done == 7 and len(journal(reg)) == 8, report.summary()  # 7 receipts + shift
    failures = [ln for ln in err.splitlines() if "recording it in the ledger failed" in ln]
    assert len(failures) == 3 and all("ERROR" in ln and "fd_number=" in ln for ln in failures), err[-3000:]
    assert "ingest paused" in err and "ingest resumes" in err
