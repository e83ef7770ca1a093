"""The worker's ingest process under kill -9 (worker.ingest.process), on real MariaDB and a real worker.

The child that polls the shop is killed while payments arrive: the worker reports it, starts another,
and every payment is still fiscalized exactly once. The worker is killed while its ingest child lives:
the child does not outlive it.
"""
from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.campaign import Writers
from tests.chaos.invariants import check
from tests.shop import alive, children, run_cli, start_cli, stop_worker, write_settings

pytestmark = pytest.mark.chaos


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def settings_for(shop: sa.URL, tmp_path: Path, *, ingest_process: bool = True) -> tuple[Path, str, Path]:
    reg = tmp_path / "reg"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    source = {"poll_interval_s": 0.05, "batch_size": 20, "ingest_process": ingest_process}
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop.render_as_string(False),
                              ledger_url=ledger_url, registers=[("kkt1", f"emulator://{reg}?fsync=0")],
                              source=source,
                              retry={"source_backoff_max_s": 0.5})
    run_cli(settings, "migrate")
    return settings, ledger_url, reg


def test_a_killed_ingest_process_is_replaced_and_nothing_is_lost(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a running worker and payments committed by 4 writers, when its ingest process is killed with
    SIGKILL three times (mid-poll or between polls), then each time the worker logs it and starts a new
    one, the worker itself keeps running, and after a drain every committed payment is fiscalized exactly
    once (invariants against the register's journal)."""
    settings, ledger_url, reg = settings_for(shop_schema, tmp_path)
    worker = start_cli(settings, "run")
    writers = Writers(shop_schema, total=300, threads=4, rng=random.Random(11))
    killed: list[int] = []
    try:
        writers.start()
        for _ in range(3):
            child = wait_for(lambda: children(worker.pid) - set(killed), 30, "an ingest process")
            (pid,) = child
            time.sleep(random.Random(pid).uniform(0.05, 0.4))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        writers.join()
        replacement = wait_for(lambda: children(worker.pid) - set(killed), 30, "a new ingest process")
        assert worker.poll() is None and len(replacement) == 1
    finally:
        writers.join()
        err = stop_worker(worker, 60)
    assert worker.returncode == 0, err[-3000:]
    assert err.count("exited (code -9)") >= 1, err[-3000:]   # a kill between polls shows at the next poll too
    run_cli(settings, "run", "--burst", "--burst-timeout", "120")
    report = check(shop_schema, ledger_url, [reg])
    assert report.ok, report.summary()
    assert report.lost == [] and report.done == writers.committed


def test_the_ingest_process_does_not_outlive_a_killed_worker(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a worker with its ingest process, when the worker is killed with SIGKILL, then the ingest
    process is gone within seconds, and a new worker drains everything exactly once."""
    settings, ledger_url, reg = settings_for(shop_schema, tmp_path)
    worker = start_cli(settings, "run")
    writers = Writers(shop_schema, total=100, threads=2, rng=random.Random(12))
    try:
        writers.start()
        (child,) = wait_for(lambda: children(worker.pid), 30, "an ingest process")
        time.sleep(0.3)
        worker.kill()
        worker.communicate(timeout=30)   # the ingest process shares its stderr: returns once both are gone
        wait_for(lambda: not alive(child), 10, "the ingest process to end")
    finally:
        writers.join()
        worker.kill()
    run_cli(settings, "run", "--burst", "--burst-timeout", "120")
    report = check(shop_schema, ledger_url, [reg])
    assert report.ok, report.summary()
    assert report.lost == [] and report.done == writers.committed


def test_ingest_in_the_workers_own_thread_when_asked(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given ``source.ingest_process: false``, then the worker starts no child process and still fiscalizes
    every committed payment exactly once (the in-thread pollers the child otherwise runs)."""
    settings, ledger_url, reg = settings_for(shop_schema, tmp_path, ingest_process=False)
    worker = start_cli(settings, "run")
    writers = Writers(shop_schema, total=100, threads=2, rng=random.Random(13))
    try:
        writers.start()
        writers.join()
        time.sleep(1.0)
        assert worker.poll() is None and children(worker.pid) == set()
    finally:
        writers.join()
        err = stop_worker(worker, 60)
    assert worker.returncode == 0, err[-3000:]
    run_cli(settings, "run", "--burst", "--burst-timeout", "120")
    report = check(shop_schema, ledger_url, [reg])
    assert report.ok, report.summary()
    assert report.lost == [] and report.done == writers.committed
