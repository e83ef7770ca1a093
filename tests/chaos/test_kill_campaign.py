"""Scenario 2 in CI: ≥ 50 random SIGKILLs of the real worker while payments flow in."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.campaign import campaign

pytestmark = pytest.mark.chaos


def test_random_kill_campaign_has_no_duplicates_and_no_losses(mariadb_admin_url: sa.URL, tmp_path: Path) -> None:
    """Given 300 payments and 50 kills at random moments, then 0 duplicates, 0 losses, ledger = journal."""
    report = campaign(kills=50, payments=300, seed=20261121, workdir=tmp_path,
                      admin_url=mariadb_admin_url.render_as_string(hide_password=False))
    (tmp_path / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    assert report["kills"] == 50
    assert report["duplicates"] == 0 and report["losses"] == 0 and report["orphans"] == 0
    assert report["done"] == report["committed"] > 0
    assert report["ok"], report
