"""A served ledger with real receipts (made on the emulated register) for the web page tests."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from kkt_drivers.registry import open_driver
from worker.ledger import migrate
from worker.ledger.store import IngestEntry, Ledger, PlannedRow
from worker.ops.health import Thresholds
from worker.ops.http import OpsServer
from worker.ops.metrics import WorkerMetrics
from worker.ops.service import install_ops_routes
from worker.ops.snapshot import take_snapshot
from worker.web.pages import install_web_routes

from tests.ledger.test_ledger import receipt, shop_row

ZONE = "Europe/Moscow"


def fill(ledger: Ledger, register_dir: Path, n: int = 60) -> None:
    """*n* sales, every one but the last three fiscalized on an emulated register; one rejected."""
    entries = []
    for i in range(1, n + 1):
        amount = f"{100 + i}.50"
        row = shop_row(i, amount)
        planned = PlannedRow("sale", 1, f"S{i}", receipt=receipt(f"S{i}", amount)) if i != n else \
            PlannedRow("sale", 1, f"S{i}", error="items[1].vat: 'vat18' is unknown (fix the row, then resend)")
        entries.append(IngestEntry(row, (planned,)))
    ledger.add_payments(entries)
    drv = open_driver(f"emulator://{register_dir}?fsync=0")
    drv.connect()
    drv.open_shift()
    for rec in ledger.list_receipts(states=["queued"])[:n - 3]:
        st = drv.status()
        attempt = ledger.record_intent(rec.id, register="kkt1", fn_serial=st.fn_serial, fd_before=st.last_fd_number)
        ledger.record_done(rec.id, drv.fiscalize(rec.receipt()), attempt_id=attempt)
    ledger.lane_heartbeat("kkt1", state="running", fn_serial=drv.status().fn_serial, shift_open=True)


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The pages read only: one filled ledger serves every test of this package."""
    tmp_path = tmp_path_factory.mktemp("web")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(ledger.engine)
    fill(ledger, tmp_path / "reg")
    server = OpsServer("127.0.0.1:0")
    install_ops_routes(server, ledger, WorkerMetrics(lambda: take_snapshot(ledger)), Thresholds())
    install_web_routes(server, ledger, ZONE)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()
    ledger.dispose()


def chromium_or_fail() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skip locally, fail in CI when they are missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    msg = "Debian's chromium and chromium-driver are needed (./start.sh test installs them)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)

