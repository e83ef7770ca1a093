"""The accountant's reports through the real CLI: daily totals with refunds subtracted, a shift
reconciled with the register's own documents and its own counters (a deliberate mismatch of each
shows up and exits 1), the Z report's counters after the shift closed, CSV for a Russian-locale
spreadsheet, ledger show as JSON."""
from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from kkt_drivers.emulator.model import RegisterModel  # the ground truth's fault, set back directly
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
    assert "3 receipts" in ok.stdout
    assert "documents: no differences" in ok.stdout and "(open shift): no differences" in ok.stdout, ok.stdout
    assert "sale: register 2 receipts 399.90" in ok.stdout and "sale_refund: register 1 receipts 150.00" in ok.stdout

    # the register's own counter drifts by a rouble; its documents and the ledger still agree
    run_cli(settings, "emulator", "tamper-counter", str(tmp_path / "reg"), "sale", "1.00", "--payment", "electronic")
    drift = run_cli(settings, "report", "shift", "--register", "kkt1", "--shift", "1", "--output", "json",
                    check=False)
    assert drift.returncode == 1, drift.stdout + drift.stderr
    report = json.loads(drift.stdout)
    assert report["differences"] == [] and report["counters"]["status"] == "checked"
    kinds = {(d["kind"], d["ledger_total"], d["register_total"]) for d in report["counters"]["differences"]}
    assert kinds == {("counter_differs", "399.90", "400.90"), ("payment_differs", "399.90", "400.90")}
    assert "its own counter disagrees" in report["counters"]["differences"][0]["note"]
    RegisterModel(tmp_path / "reg").tamper_counter("sale", "-1.00", "electronic")

    with sqlite3.connect(ledger) as db:          # the ledger is off by a rouble on one receipt
        db.execute("UPDATE receipts SET total = total + 1 WHERE tag = 'S1'")
    bad = run_cli(settings, "report", "shift", "--register", "kkt1", "--shift", "1", check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "total_differs" in bad.stdout and "tag S1" in bad.stdout
    # the ledger's sum now differs from the register's counter too, and the document points at S1
    assert "counter_differs: sale: register counter 399.90" in bad.stdout
    assert "behind it: FD" in bad.stdout and "tag S1 (total_differs)" in bad.stdout
    with sqlite3.connect(ledger) as db:
        db.execute("UPDATE receipts SET total = total - 1 WHERE tag = 'S1'")

    # after the Z report the counters come from it (final)
    run_cli(settings, "shift", "close", "--register", "kkt1")
    closed = run_cli(settings, "report", "shift", "--register", "kkt1", "--shift", "1")
    assert "counters from Z report FD 5 (final): no differences" in closed.stdout, closed.stdout

    sheet = run_cli(settings, "report", "daily", "--counters", "--output", "csv")
    assert sheet.stdout.startswith("\ufeff")            # the BOM: a spreadsheet reads the file as UTF-8
    lines = sheet.stdout.lstrip("\ufeff").splitlines()
    assert lines[0] == "Раздел;Показатель;Количество;Сумма;Сумма по ККТ;Примечание"
    assert "итого;net;;249,90;;" in lines
    assert any(line.startswith("счётчики ККТ kkt1 смена 1;sale;2;399,90;399,90;Z report FD 5") for line in lines)
    today = json.loads(run_cli(settings, "report", "daily", "--output", "json").stdout)["from"]
    ranged = json.loads(run_cli(settings, "report", "range", "--from", today, "--to", today, "--counters",
                                "--output", "json").stdout)
    assert [(k["register"], k["shift"], k["status"]) for k in ranged["counters"]] == [("kkt1", 1, "checked")]

    shown = json.loads(run_cli(settings, "ledger", "show", "--id", str(sale), "--output", "json").stdout)
    assert shown[0]["fd_number"] and shown[0]["qr"].startswith("t=") and shown[0]["attempts_history"]

    # --output csv on the read commands: BOM, ';', decimal comma, the requisites' Russian titles
    listed = run_cli(settings, "ledger", "list", "--limit", "2", "--output", "csv")
    assert listed.stdout.startswith("\ufeff")
    rows = listed.stdout.lstrip("\ufeff").splitlines()
    assert rows[0].split(";")[:3] == ["ID платежа", "Вид", "Этап"] and len(rows) == 3
    assert "rows 1–2 of 3; more with --offset 2" in listed.stderr        # the cut is said, off the table
    one = run_cli(settings, "ledger", "show", str(sale), "--output", "csv").stdout.lstrip("\ufeff").splitlines()
    cells = dict(zip(one[0].split(";"), one[1].split(";")))
    assert cells["Сумма чека"] == "300,00" and cells["QR"].startswith("t=") and cells["ФД"] == "2"
    status = run_cli(settings, "status", "--output", "csv").stdout.lstrip("\ufeff").splitlines()
    assert status[0] == "Раздел;Показатель;Значение" and "receipts;done;3" in status
