"""Late rows and the sweep: a sale committed after its gap expired is swept in, the refund that waited
for it is rebuilt and printed after it, the swept id leaves the expired-gap list, a shop row changed
after ingest is reported (its receipt stays as printed), and the sweep's timer lives in the ledger."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.shop import insert_payment, receipts_by_tag, run_cli, sale_items, start_cli, write_settings

pytestmark = pytest.mark.acceptance


def wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout} s")


def test_sweep_replans_waiting_refund_and_reports_drift(shop_schema: sa.URL, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    ledger = tmp_path / "ledger.db"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
                              ledger_url=f"sqlite:///{ledger}", registers=[("kkt1", f"emulator://{reg}")],
                              source={"gap_timeout_s": 1, "sweep_interval_s": 3, "sweep_window": 100})
    run_cli(settings, "migrate")
    eng = sa.create_engine(shop_schema, poolclass=sa.NullPool)
    slow = eng.connect()
    tx = slow.begin()
    sale = insert_payment(slow, sale_items(2))                   # id 1, not committed yet
    with eng.begin() as conn:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")      # the refund row may name the uncommitted sale
        other = insert_payment(conn, sale_items(1))              # id 2
        refund = insert_payment(conn, [dict(sale_items(2)[0])], kind="refund", refund_of=sale)   # id 3
    worker = start_cli(settings, "run")
    try:
        wait_for(lambda: "S2" in receipts_by_tag(reg), 30, "sale 2 printed")
        time.sleep(2)                                            # gap 1 expires; the refund is rejected
        status = json.loads(run_cli(settings, "status", "--json").stdout)
        assert [g["id"] for g in status["expired_gaps"]] == [sale]
        tx.commit()                                              # the sale commits late
        slow.close()
        wait_for(lambda: f"R{refund}" in receipts_by_tag(reg), 30, "refund printed after the swept-in sale")
        with eng.begin() as conn:                                # the shop edits an ingested row
            conn.execute(sa.text("UPDATE payments SET amount = 999 WHERE id = :i"), {"i": other})
        wait_for(lambda: "changed in the shop" in run_cli(settings, "status").stdout, 30, "drift reported")
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=60)
    docs = receipts_by_tag(reg)
    assert docs[f"S{sale}"][0]["fd"] < docs[f"R{refund}"][0]["fd"] and all(len(d) == 1 for d in docs.values())
    status = json.loads(run_cli(settings, "status", "--json").stdout)
    assert status["expired_gaps"] == [] and [g["id"] for g in status["swept_in"]] == [sale]
    assert status["drifted"][0]["source_id"] == other and "amount" in status["drifted"][0]["drift"]
    assert "appeared after their gap had expired" in err and "refund rebuilt" in err
    # the sweep's timer lives in the ledger: a restart keeps it (a timer reset at every start never fires
    # for a worker restarted more often than sweep_interval_s)
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schedules WHERE name = 'sweep:payments'").fetchone()[0] == 1
        conn.execute("UPDATE schedules SET next_at = '2100-01-01 00:00:00.000000'")
    run_cli(settings, "run", "--burst", "--burst-timeout", "30")
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT next_at FROM schedules").fetchone()[0].startswith("2100-01-01")
