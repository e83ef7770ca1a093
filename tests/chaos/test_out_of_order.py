"""Scenario 5: many concurrent writers on real MariaDB, transactions held open for random times (some
for seconds), some rolled back, while the worker polls: every committed row is fiscalized exactly once
and the rolled-back ids, only they, expire as gaps."""
from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.campaign import Writers
from tests.chaos.invariants import check
from tests.shop import run_cli, start_cli, write_settings

pytestmark = pytest.mark.chaos

GAP_TIMEOUT_S = 5   # longer than the longest writer transaction (3 s)


def test_out_of_order_commits_at_scale(shop_schema: sa.URL, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
                              ledger_url=ledger_url, registers=[("kkt1", f"emulator://{reg}?fsync=0")],
                              source={"gap_timeout_s": GAP_TIMEOUT_S, "poll_interval_s": 0.05, "batch_size": 100},
                              log={"level": "WARNING"})
    run_cli(settings, "migrate")
    worker = start_cli(settings, "run")
    try:
        writers = Writers(shop_schema, total=600, threads=8, rng=random.Random(7))
        writers.long_hold = (1.0, 3.0)
        writers.start()
        writers.join()
        time.sleep(GAP_TIMEOUT_S + 1.5)      # let the open gaps of rolled-back ids pass their grace period
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert worker.returncode == 0
    run_cli(settings, "run", "--burst", "--burst-timeout", "120")
    report = check(shop_schema, ledger_url, [reg])
    assert report.ok, report.summary()
    assert report.lost == [] and report.done == writers.committed
    with sa.create_engine(ledger_url).connect() as conn:
        expired = set(conn.execute(sa.text("SELECT id FROM gap_log WHERE reason = 'expired'")).scalars())
        still_open = set(conn.execute(sa.text("SELECT id FROM ingest_gaps")).scalars())
        max_id = conn.execute(sa.text("SELECT last_id FROM ingest_cursor")).scalar()
    rolled_below_cursor = {i for i in writers.rolled_back_ids if i < max_id}
    assert expired | still_open == rolled_below_cursor
    assert writers.rolled_back > 0 and expired
