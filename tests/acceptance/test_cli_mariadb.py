"""The real CLI in subprocesses: MariaDB shop → kkt-worker → emulated register journal → ledger.

The register's journal (fsync'd by the emulator) is the ground truth, never the worker's opinion.
"""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.shop import cli_env, insert_payment, receipts_by_tag, run_cli, sale_items, start_cli, write_settings

pytestmark = pytest.mark.acceptance


def setup_run(tmp_path: Path, shop_url: sa.URL, reg_query: str = "", ledger_url: str | None = None) -> tuple[Path, Path]:
    reg = tmp_path / "reg"
    settings = write_settings(
        tmp_path / "settings.yaml", source_url=shop_url.render_as_string(hide_password=False),
        ledger_url=ledger_url or f"sqlite:///{tmp_path / 'ledger.db'}",
        registers=[("kkt1", f"emulator://{reg}?seed=5{'&' + reg_query if reg_query else ''}")])
    run_cli(settings, "migrate")
    return settings, reg


def ledger_rows(tmp_path: Path) -> dict[str, tuple]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return {row[0]: row[1:] for row in db.execute(
            "SELECT tag, state, fd_number, fiscal_sign, total, qr, last_error FROM receipts")}


def assert_exactly_once(tmp_path: Path, reg: Path, n_done: int) -> None:
    docs = receipts_by_tag(reg)
    rows = ledger_rows(tmp_path)
    done = {tag: r for tag, r in rows.items() if r[0] == "done"}
    assert len(done) == n_done
    assert all(len(d) == 1 for d in docs.values()), f"duplicate documents: {docs}"
    assert set(docs) == set(done), "every document belongs to a done ledger row and vice versa"
    for tag, (state, fd, fp, total, qr, _) in done.items():
        doc = docs[tag][0]
        assert (fd, fp, Decimal(str(total))) == (doc["fd"], doc["fp"], Decimal(doc["total"]))
        assert f"&i={fd}&fp={fp}&" in qr


def test_payments_become_receipts_end_to_end(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given sales and a partial refund in MariaDB, `run --burst` makes one document per payment."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        sale = insert_payment(conn, sale_items(3, "249.90"))
        for _ in range(4):
            insert_payment(conn, sale_items(2))
        refund_items = [dict(sale_items(1, "249.90")[0])]
        insert_payment(conn, refund_items, kind="refund", refund_of=sale)
    settings, reg = setup_run(tmp_path, shop_schema)
    out = run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert "fiscalized 6 receipts" in out.stdout, out.stdout + out.stderr
    assert_exactly_once(tmp_path, reg, 6)
    refund_doc = receipts_by_tag(reg)["R6"][0]
    assert refund_doc["operation"] == 2 and refund_doc["total"] == "249.90"
    status = run_cli(settings, "status").stdout
    assert "done 6" in status and "last id 6" in status
    csv_path = tmp_path / "export.csv"
    run_cli(settings, "ledger", "export", "-o", str(csv_path))
    text = csv_path.read_bytes()
    assert text.startswith(b"\xef\xbb\xbf") and "749,70".encode() in text and b";" in text


@pytest.mark.parametrize("point,on_register", [("after_close_sent", 1), ("after_register_answered", 2)])
def test_sigkill_after_the_register_closed_the_receipt(shop_schema: sa.URL, tmp_path: Path, point: str,
                                                      on_register: int) -> None:
    """Kill -9 around the close, before the outcome was recorded; restart: done, once.

    With the in-process emulator the close command dies with the process at "after_close_sent"
    (the receipt stays open: reconciliation cancels and resends); at "after_register_answered" the
    document exists and reconciliation must find it by its tag.
    """
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(3):
            insert_payment(conn, sale_items(2))
    settings, reg = setup_run(tmp_path, shop_schema)
    crashed = run_cli(settings, "run", "--burst", env=cli_env(KKT_CRASHPOINT=f"{point}:2"), check=False)
    assert crashed.returncode == -signal.SIGKILL
    before = ledger_rows(tmp_path)
    assert [r[0] for r in before.values()].count("sending") == 1
    assert len(receipts_by_tag(reg)) == on_register
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert_exactly_once(tmp_path, reg, 3)


def test_transient_register_failures_then_recovery_and_a_rejected_row(shop_schema: sa.URL, tmp_path: Path) -> None:
    """A register failing before send twice, and a bad row in the middle: good rows done, the bad one
    rejected with the field named; after the shop fixes it, `resend` fiscalizes it."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        insert_payment(conn, sale_items(1))
        bad = insert_payment(conn, sale_items(2), amount=Decimal("999.99"))
        insert_payment(conn, sale_items(1))
    settings, reg = setup_run(tmp_path, shop_schema, "fail_before_send=first:2")
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    rows = ledger_rows(tmp_path)
    assert rows["S1"][0] == "done" and rows["S3"][0] == "done"
    assert rows["S2"][0] == "rejected" and "payments.amount" in rows["S2"][5]
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE payments SET amount = 200.00 WHERE id = :i"), {"i": bad})
    out = run_cli(settings, "resend", "--id", str(bad), "--yes").stdout
    assert "requeued" in out
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert_exactly_once(tmp_path, reg, 3)


def start_when_printing(settings: Path, reg: Path) -> subprocess.Popen[str]:
    """Start `run` and return once the register has printed its first receipt."""
    proc = start_cli(settings, "run")
    deadline = time.monotonic() + 30
    while not receipts_by_tag(reg) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_sigterm_finishes_the_receipt_in_progress(shop_schema: sa.URL, tmp_path: Path) -> None:
    """SIGTERM while receipts are being printed: exit 0, nothing left "sending"; restart finishes the rest."""
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(6):
            insert_payment(conn, sale_items(3))
    settings, reg = setup_run(tmp_path, shop_schema, "latency_ms=150")
    proc = start_when_printing(settings, reg)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "sending" not in [r[0] for r in ledger_rows(tmp_path).values()]
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert_exactly_once(tmp_path, reg, 6)


def test_second_sigterm_exits_at_once_and_restart_reconciles(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Two signals: the process exits immediately (130); the next run reconciles and nothing doubles."""
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(4):
            insert_payment(conn, sale_items(2))
    settings, reg = setup_run(tmp_path, shop_schema, "latency_ms=400")
    proc = start_cli(settings, "run")
    # wait until a receipt is in flight: its intent is recorded and the slow register is working on it
    deadline = time.monotonic() + 30
    while "sending" not in [r[0] for r in ledger_rows(tmp_path).values()] and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    proc.communicate(timeout=10)
    assert proc.returncode == 130 and time.monotonic() - t0 < 2
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert_exactly_once(tmp_path, reg, 4)


def test_postgres_ledger_end_to_end(shop_schema: sa.URL, postgres_url: sa.URL, tmp_path: Path) -> None:
    """The same flow with the ledger on the real PostgreSQL, including a crash after the close."""
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(3):
            insert_payment(conn, sale_items(2))
    pg = postgres_url.render_as_string(hide_password=False)
    settings, reg = setup_run(tmp_path, shop_schema, ledger_url=pg)
    crashed = run_cli(settings, "run", "--burst", env=cli_env(KKT_CRASHPOINT="after_register_answered:2"),
                      check=False)
    assert crashed.returncode == -signal.SIGKILL
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    with sa.create_engine(postgres_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT tag, state, fd_number FROM receipts ORDER BY tag")).all()
    docs = receipts_by_tag(reg)
    assert [(t, s) for t, s, _ in rows] == [("S1", "done"), ("S2", "done"), ("S3", "done")]
    assert all(len(docs[t]) == 1 and docs[t][0]["fd"] == fd for t, _, fd in rows)
