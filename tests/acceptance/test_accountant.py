"""The accountant's reports through the real CLI: daily totals with refunds subtracted, a shift
reconciled with the register's own documents (a deliberate mismatch shows up), ledger show as JSON."""
from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.shop import insert_payment, run_cli, sale_items, write_settings

pytestmark = pytest.mark.acceptance


def test_reports_and_a_shift_reconciled_with_the_register(shop_schema: sa.URL, tmp_path: Path) -> None:
    engine = sa.create_engine(shop_schema)
    with engine.begin() as conn:
        sale = insert_payment(conn, sale_items(2, "150.00"))
        insert_payment(conn, sale_items(1, "99.90"))
        insert_payment(conn, [{"line_no": 1, "name": "Товар 1", "price": Decimal("150.00"),
                               "quantity": Decimal("1.000"), "amount": Decimal("150.00"), "vat": "vat22"}],
                       kind="refund", refund_of=sale)
    engine.dispose()
    ledger = tmp_path / "ledger.db"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
                              ledger_url=f"sqlite:///{ledger}",
                              registers=[("kkt1", f"emulator:{tmp_path / 'reg'}?fsync=0")])
    run_cli(settings, "migrate")
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")

    daily = json.loads(run_cli(settings, "report", "daily", "--output", "json").stdout)
    assert (daily["sales"], daily["refunds"], daily["net"]) == ("399.90", "150.00", "249.90")
    assert daily["by_vat"] == {"vat22": "249.90"} and daily["without_receipt"]["payments"] == []

    ok = run_cli(settings, "report", "shift", "--register", "kkt1", "--shift", "1")
    assert "no differences" in ok.stdout and "3 receipts" in ok.stdout

    with sqlite3.connect(ledger) as db:          # the ledger is off by a rouble on one receipt
        db.execute("UPDATE receipts SET total = total + 1 WHERE tag = 'S1'")
    bad = run_cli(settings, "report", "shift", "--register", "kkt1", "--shift", "1", check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "total_differs" in bad.stdout and "tag S1" in bad.stdout

    shown = json.loads(run_cli(settings, "ledger", "show", "--id", str(sale), "--output", "json").stdout)
    assert shown[0]["fd_number"] and shown[0]["qr"].startswith("t=") and shown[0]["attempts_history"]
