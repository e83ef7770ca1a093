"""What the driver end-to-end tests share (tests/acceptance/test_*_e2e.py): an emulator in its own
process, a worker configured for one register, and the kill -9 / restart sequence.

Each test keeps its own assertions on the outcome; these helpers only replace the repeated setup and
the crash sequence (whose own checks — killed by SIGKILL, the register finished exactly what it took —
are made here, once).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest
import sqlalchemy as sa

from tests.chaos.invariants import Report, check
from tests.shop import cli_env, insert_payment, receipts_by_tag, run_cli, sale_items, wait_serving, write_settings

#: how long the register may take to finish what it accepted before the worker was killed
SETTLE_S = 5.0


@contextmanager
def emulator_process(args: Sequence[str], port: int, env: dict[str, str] | None = None
                     ) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m ARGS…``, an emulator that listens on *port*: started, waited for, stopped at the end."""
    proc = subprocess.Popen([sys.executable, "-m", *args], env=env or cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_serving(proc, port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def marker_args(request: pytest.FixtureRequest, name: str) -> list[str]:
    """The arguments of the test's *name* marker (``@pytest.mark.faults(…)``), or none."""
    marker = request.node.get_closest_marker(name)
    return list(marker.args if marker else ())


def one_register(tmp_path: Path, shop: sa.URL, name: str, url: str,
                 env: dict[str, str] | None = None) -> tuple[Path, str]:
    """settings.yaml for *shop*, a SQLite ledger and one register *name* at *url*, migrated.
    Returns (settings path, ledger URL)."""
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                              ledger_url=ledger_url, registers=[(name, url)])
    run_cli(settings, "migrate", env=env)
    return settings, ledger_url


def insert_sales(shop: sa.URL, count: int, lines: int = 2) -> None:
    """*count* paid sales of *lines* lines each in the shop."""
    with sa.create_engine(shop).begin() as conn:
        for _ in range(count):
            insert_payment(conn, sale_items(lines))


def crash_then_restart(shop: sa.URL, settings: Path, ledger_url: str, state: Path, point: str,
                       env: dict[str, str] | None = None) -> Report:
    """Three payments; a burst killed (-9) at crash point *point* of the second receipt; the register
    finishes what it accepted (exactly 2 documents); a restarted burst. Returns the invariant report."""
    env = env or cli_env()
    insert_sales(shop, 3)
    crashed = run_cli(settings, "run", "--burst", env={**env, "KKT_CRASHPOINT": f"{point}:2"}, check=False)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    deadline = time.monotonic() + SETTLE_S        # the register finishes what it received, on its own
    while len(receipts_by_tag(state)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)                               # and nothing more comes
    assert len(receipts_by_tag(state)) == 2
    run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=env)
    return check(shop, ledger_url, [state])
