"""Scenario 3: register faults at random rates over many payments: 0 duplicates, 0 losses, and every
uncertain outcome resolved by reconciliation without a human (the journal makes the answer certain)."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from kkt_drivers.emulator.driver import EmulatorDriver
from tests.chaos.invariants import check
from tests.shop import insert_payment, run_cli, sale_items, write_settings

pytestmark = pytest.mark.chaos

FAULTS = ("fail_before_send=0.08&lose_reply_after_close=0.08&lose_reply_before_close=0.08"
          "&paper_out_mid_receipt=0.04&fn_error=0.04")


def test_random_register_faults_are_all_resolved(shop_schema: sa.URL, tmp_path: Path) -> None:
    """120 payments through two registers that fail in every way at random: all done, exactly once."""
    with sa.create_engine(shop_schema).begin() as conn:
        for i in range(120):
            insert_payment(conn, sale_items(1 + i % 4, f"{100 + i}.{i % 100:02d}"))
    regs = [tmp_path / "r1", tmp_path / "r2"]
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = write_settings(
        tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False), ledger_url=ledger_url,
        registers=[("kkt1", f"emulator://{regs[0]}?serial=EMU1&seed=11&{FAULTS}"),
                   ("kkt2", f"emulator://{regs[1]}?serial=EMU2&seed=12&{FAULTS}")],
        retry={"max_attempts": 50, "device_pause_s": 0.05}, log={"level": "WARNING"})
    # the emulated cashier reloads paper after 2 s of register time: let the lanes see it sooner
    run_cli(settings, "migrate")
    run_cli(settings, "run", "--burst", "--burst-timeout", "240", timeout=300)
    report = check(shop_schema, ledger_url, regs)
    assert report.ok, report.summary()
    assert report.done == 120 and report.states == {"done": 120}
    with sa.create_engine(ledger_url).connect() as conn:
        outcomes = dict(conn.execute(sa.text("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome")).all())
    # every kind of fault really happened and was handled
    assert outcomes.get("reconciled_done", 0) > 0, outcomes      # reply lost after close
    assert outcomes.get("reconciled_retry", 0) > 0, outcomes     # close lost
    assert outcomes.get("transient", 0) > 0 and outcomes.get("device", 0) > 0, outcomes
    for reg in regs:
        assert EmulatorDriver.from_url(f"emulator://{reg}").register.status().receipt_open is False
