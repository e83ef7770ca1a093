"""Scenario 4: the shop's MariaDB disappears and comes back, its network stalls, the PostgreSQL ledger
restarts — the worker keeps running, backs off, resumes within seconds and loses nothing.

A fault-injecting TCP proxy on loopback stands between the worker and each database, so the real
servers (shared with the rest of the suite) are never stopped.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa

from tests.chaos.faultproxy import FaultProxy
from tests.chaos.invariants import check
from tests.shop import dump_threads, insert_payment, run_cli, sale_items, start_cli, stop_worker, thread_dump, write_settings

pytestmark = pytest.mark.chaos


def wait_until(pred: Callable[[], bool], timeout: float) -> float:
    """Seconds until *pred* held; AssertionError after *timeout*."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s")


def done_count(ledger_url: str) -> int:
    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text("SELECT COUNT(*) FROM receipts WHERE state = 'done'")).scalar()
    except sa.exc.OperationalError:
        return -1
    finally:
        eng.dispose()


def add(shop: sa.URL, n: int) -> None:
    with sa.create_engine(shop, poolclass=sa.NullPool).begin() as conn:
        for _ in range(n):
            insert_payment(conn, sale_items(2))


def test_shop_database_outage_and_stall(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Connections reset and refused for 6 s, then a 6 s black hole: rows written meanwhile are all
    fiscalized within seconds of the database's return."""
    reg = tmp_path / "reg"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with FaultProxy(shop_schema.host, shop_schema.port) as proxy:
        via_proxy = shop_schema.set(port=proxy.port).render_as_string(hide_password=False)
        settings = write_settings(tmp_path / "settings.yaml", source_url=via_proxy, ledger_url=ledger_url,
                                  registers=[("kkt1", f"emulator://{reg}")],
                                  source={"read_timeout_s": 2, "write_timeout_s": 2, "connect_timeout_s": 2,
                                          "poll_interval_s": 0.2},
                                  retry={"source_backoff_max_s": 2})
        run_cli(settings, "migrate")
        worker = start_cli(settings, "run")
        try:
            add(shop_schema, 5)
            wait_until(lambda: done_count(ledger_url) == 5, 30)
            proxy.outage()
            add(shop_schema, 5)                      # the shop keeps selling during the outage
            time.sleep(6)
            assert worker.poll() is None, "the worker must keep running while the database is away"
            proxy.restore()
            resume_outage = wait_until(lambda: done_count(ledger_url) == 10, 30)
            proxy.stall()
            add(shop_schema, 5)
            time.sleep(6)
            assert worker.poll() is None
            proxy.restore()
            resume_stall = wait_until(lambda: done_count(ledger_url) == 15, 30)
        finally:
            worker.terminate()
            _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err[-3000:]
    report = check(shop_schema, ledger_url, [reg])
    assert report.ok and report.done == 15, report.summary()
    print(json.dumps({"resume_after_outage_s": round(resume_outage, 2), "resume_after_stall_s": round(resume_stall, 2)}))
    assert resume_outage < 10 and resume_stall < 10
    # the outage is logged once with its cause, then how long it lasted (worker/log.py OutageLog)
    assert "polling (shop database or ledger) unavailable: " in err
    assert "polling (shop database or ledger) recovered after " in err


def test_postgres_ledger_restart_while_fiscalizing(shop_schema: sa.URL, postgres_url: sa.URL, tmp_path: Path) -> None:
    """The ledger's connections are reset three times while receipts are being printed: the worker
    carries on, uncertain receipts are reconciled, every payment ends done exactly once."""
    reg = tmp_path / "reg"
    with FaultProxy(postgres_url.host, postgres_url.port) as proxy:
        ledger_via_proxy = postgres_url.set(port=proxy.port).render_as_string(hide_password=False)
        direct = postgres_url.render_as_string(hide_password=False)
        settings = write_settings(tmp_path / "settings.yaml",
                                  source_url=shop_schema.render_as_string(hide_password=False),
                                  ledger_url=ledger_via_proxy, registers=[("kkt1", f"emulator://{reg}?latency_ms=20")],
                                  retry={"device_pause_s": 0.3, "source_backoff_max_s": 1})
        run_cli(settings, "migrate")
        add(shop_schema, 150)
        worker = start_cli(settings, "run")
        try:
            wait_until(lambda: done_count(direct) >= 5, 30)
            resumes: list[float] = []
            for _ in range(3):
                proxy.outage()
                time.sleep(2)
                assert worker.poll() is None
                before = done_count(direct)
                proxy.restore()
                resumes.append(wait_until(lambda: done_count(direct) > before, 30))
            wait_until(lambda: done_count(direct) == 150, 90)
        except AssertionError:
            dump_threads(worker)   # what it waits for, on its stderr
            err = stop_worker(worker, 60)
            print(thread_dump(err), "\n---\n", err[-6000:])
            raise
        finally:
            err = stop_worker(worker, 60)
        assert worker.returncode == 0, err[-3000:]
    report = check(shop_schema, direct, [reg])
    assert report.ok and report.done == 150, report.summary()
    print(json.dumps({"ledger_resume_s": [round(r, 2) for r in resumes]}))
    assert max(resumes) < 10
