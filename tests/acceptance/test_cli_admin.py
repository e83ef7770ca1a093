"""The admin's and the accountant's commands through the real CLI."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.shop import cli_env, insert_payment, receipts_by_tag, run_cli, sale_items, write_settings

pytestmark = pytest.mark.acceptance


def make(tmp_path: Path, shop: sa.URL, **sections) -> tuple[Path, Path]:
    reg = tmp_path / "reg"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                              ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                              registers=[("kkt1", f"emulator://{reg}")], **sections)
    run_cli(settings, "migrate")
    return settings, reg


def test_backfill_fills_a_range_and_never_fiscalizes_twice(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Go-live after id 3: ids 4..5 are polled; backfill 1..5 adds 1..3 only; every payment once."""
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(5):
            insert_payment(conn, sale_items(1))
    settings, reg = make(tmp_path, shop_schema, source={"start_after_id": 3})
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert sorted(receipts_by_tag(reg)) == ["S4", "S5"]
    dry = run_cli(settings, "backfill", "--from-id", "1", "--to-id", "5", "--dry-run").stdout
    assert "payment 1: would be ingested" in dry and "payment 4: skipped (already in the ledger)" in dry
    assert "3 of 5 shop rows" in dry
    refused = run_cli(settings, "backfill", "--from-id", "1", "--to-id", "5", check=False)   # a script, no --yes
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    out = run_cli(settings, "backfill", "--from-id", "1", "--to-id", "5", "--yes")
    assert "added 3 payments" in out.stdout
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    docs = receipts_by_tag(reg)
    assert sorted(docs) == ["S1", "S2", "S3", "S4", "S5"] and all(len(d) == 1 for d in docs.values())
    listed = run_cli(settings, "ledger", "list", "--state", "done", "--id", "2", "--id", "4").stdout
    assert " S2 " in listed and " S4 " in listed and " S1 " not in listed and "2 receipts" in listed
    assert "0 receipts" in run_cli(settings, "ledger", "list", "--from", "2000-01-01", "--to", "2000-01-02").stdout
    status = json.loads(run_cli(settings, "status", "--json").stdout)
    assert status["counts"] == {"done": 5}


def test_reconcile_command_resolves_a_crashed_receipt(shop_schema: sa.URL, tmp_path: Path) -> None:
    """After a SIGKILL between the register's answer and the ledger, `reconcile` (worker stopped) finds it."""
    with sa.create_engine(shop_schema).begin() as conn:
        insert_payment(conn, sale_items(2))
    settings, reg = make(tmp_path, shop_schema)
    crashed = run_cli(settings, "run", "--burst", env=cli_env(KKT_CRASHPOINT="after_register_answered"),
                      check=False)
    assert crashed.returncode == -signal.SIGKILL
    out = run_cli(settings, "reconcile").stdout
    assert "S1: done" in out
    shown = run_cli(settings, "ledger", "show", "1").stdout
    assert f"fd_number: {receipts_by_tag(reg)['S1'][0]['fd']}" in shown and "reconciled_done" in shown


def test_shift_and_reports(shop_schema: sa.URL, tmp_path: Path) -> None:
    """shift open / status / close and the X report act on the configured register."""
    settings, reg = make(tmp_path, shop_schema)
    assert "shift #1 opened" in run_cli(settings, "shift", "open").stdout
    assert "open" in run_cli(settings, "shift", "status").stdout
    assert "X report printed" in run_cli(settings, "report", "x").stdout
    assert "closed, Z report" in run_cli(settings, "shift", "close").stdout
    assert "closed" in run_cli(settings, "shift", "status").stdout
    check = run_cli(settings, "check")
    assert "[ok] source" in check.stdout and "[ok] ledger" in check.stdout and "[ok] register kkt1" in check.stdout


def test_unknown_setting_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    """A typo in settings.yaml stops the CLI with the key's path."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("registers:\n  - name: kkt1\n    ur: emulator:reg\n")
    out = run_cli(settings, "status", check=False)
    assert out.returncode != 0 and "registers[0].ur: unknown setting" in out.stderr
