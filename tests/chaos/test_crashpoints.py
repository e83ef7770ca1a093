"""Scenario 1: SIGKILL at every named point of the fiscalize path, restart, drain, check invariants."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.invariants import check
from tests.shop import cli_env, insert_payment, run_cli, sale_items, write_settings
from worker.fiscal.crashpoints import POINTS

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("nth", [1, 3])
@pytest.mark.parametrize("point", POINTS)
def test_crash_at_point_then_restart_keeps_exactly_once(shop_schema: sa.URL, tmp_path: Path, point: str,
                                                        nth: int) -> None:
    """Given 4 payments, when the worker SIGKILLs itself at *point* the *nth* time, then after a restart
    every payment has exactly one document and the ledger agrees with the register's journal."""
    with sa.create_engine(shop_schema).begin() as conn:
        for i in range(4):
            insert_payment(conn, sale_items(1 + i % 3))
    reg = tmp_path / "reg"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
                              ledger_url=ledger_url, registers=[("kkt1", f"emulator://{reg}")])
    run_cli(settings, "migrate")
    crashed = run_cli(settings, "run", "--burst", env=cli_env(KKT_CRASHPOINT=f"{point}:{nth}"), check=False)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    report = check(shop_schema, ledger_url, [reg])
    assert report.ok, report.summary()
    assert report.done == 4 and report.documents == 4
