"""The worker end to end through KKMServer's HTTP JSON API (the emulator in its own process).

The register URL in settings.yaml is ``kkmserver+http://127.0.0.1:PORT?…`` with Basic auth whose
password comes from an environment variable. A SIGKILL of the worker once RegisterCheck is on the
wire leaves a document the worker never heard of; the restart asks GetRezult by the receipt's
IdCommand and binds that document: exactly one per payment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from tests.chaos.invariants import check
from tests.e2e import crash_then_restart, emulator_process, marker_args, one_register
from tests.shop import cli_env, free_port, insert_payment, receipts_by_tag, run_cli, sale_items

pytestmark = pytest.mark.acceptance

PASSWORD_ENV = "KKT_KKM_PASSWORD"
PASSWORD = "e2e-secret"


def env(**extra: str) -> dict[str, str]:
    return cli_env(**{PASSWORD_ENV: PASSWORD, **extra})


@pytest.fixture
def kkmserver(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    """An emulated KKMServer with one register, in its own process; faults from the `faults` marker."""
    port, state = free_port(), tmp_path / "kkm"
    args = marker_args(request, "faults")
    if args[:1] == ["latency_ms"]:                 # a slow register rather than a fault
        extra = ["--latency-ms", args[1]]
    else:
        extra = [f"--fault={f}" for f in args]
    with emulator_process(["kkt_drivers.kkmserver.server", str(state), "--port", str(port), "--seed", "5",
                           "--password-env", PASSWORD_ENV, *extra], port, env()):
        yield state, port


def setup(tmp_path: Path, shop: sa.URL, port: int, options: str = "timeout=3&wait=5&deadline_s=20") -> tuple[Path, str]:
    url = f"kkmserver+http://127.0.0.1:{port}?num_device=1&password_env={PASSWORD_ENV}&{options}"
    return one_register(tmp_path, shop, "kkm1", url, env())


def outcomes(ledger_url: str) -> list[tuple[str, str | None]]:
    """(action, outcome) of every attempt the worker recorded."""
    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, outcome FROM attempts ORDER BY id")).all()
    eng.dispose()
    return [(r.action, r.outcome) for r in rows]


def test_sales_and_refund_through_kkmserver(shop_schema: sa.URL, tmp_path: Path, kkmserver) -> None:
    """Payments in MariaDB → RegisterCheck over HTTP → done rows whose FD/FP match the register's journal."""
    state, port = kkmserver
    with sa.create_engine(shop_schema).begin() as conn:
        sale = insert_payment(conn, sale_items(3, "199.99"))
        insert_payment(conn, sale_items(2))
        insert_payment(conn, [dict(sale_items(1, "199.99")[0])], kind="refund", refund_of=sale)
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 3, report.summary()
    docs = receipts_by_tag(state)
    assert docs["R3"][0]["operation"] == 2 and docs["S1"][0]["total"] == "599.97"
    assert docs["S1"][0]["requisites"]["1008"] == "buyer@example.ru"


def test_wrong_password_keeps_payments_waiting(shop_schema: sa.URL, tmp_path: Path, kkmserver) -> None:
    """A refused password pauses the lane: nothing is fiscalized, nothing is rejected."""
    state, port = kkmserver
    with sa.create_engine(shop_schema).begin() as conn:
        insert_payment(conn, sale_items(1))
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    run_cli(settings, "run", "--burst", "--burst-timeout", "3", env=env(**{PASSWORD_ENV: "wrong"}), check=False)
    assert receipts_by_tag(state) == {}
    report = check(shop_schema, ledger_url, [state])
    assert report.done == 0 and "rejected" not in report.states, report.summary()


@pytest.mark.parametrize("point", ["after_close_sent", "after_register_answered"])
def test_sigkill_after_register_check_then_restart(shop_schema: sa.URL, tmp_path: Path, kkmserver, point: str) -> None:
    """Kill -9 once RegisterCheck reached KKMServer: the restart finds the document by IdCommand."""
    state, port = kkmserver
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    report = crash_then_restart(shop_schema, settings, ledger_url, state, point, env())
    assert report.ok and report.done == 3 and report.documents == 3, report.summary()
    assert ("reconcile", "reconciled_done") in outcomes(ledger_url)   # found by IdCommand, not resent


@pytest.mark.faults("lose_reply_after_close=0.15", "lose_reply_before_close=0.1", "fail_before_send=0.1",
                    "paper_out_mid_receipt=0.03", "fn_error=0.03")
def test_faults_are_resolved_exactly_once(shop_schema: sa.URL, tmp_path: Path, kkmserver) -> None:
    """A KKMServer that loses replies around the close, refuses, runs out of paper: all done, once."""
    state, port = kkmserver
    with sa.create_engine(shop_schema).begin() as conn:
        for i in range(12):
            insert_payment(conn, sale_items(1 + i % 3))
    settings, ledger_url = setup(tmp_path, shop_schema, port, options="timeout=2&wait=3&deadline_s=10")
    run_cli(settings, "run", "--burst", "--burst-timeout", "180", timeout=240, env=env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 12 and report.documents == 12, report.summary()
    assert any(action == "reconcile" for action, _ in outcomes(ledger_url))   # the faults did fire


@pytest.mark.faults("latency_ms", "1200")
def test_slow_register_in_asynchronous_mode(shop_schema: sa.URL, tmp_path: Path, kkmserver) -> None:
    """Every register command takes 1.2 s; RegisterCheck goes asynchronously (Timeout 1) and the driver
    polls GetRezult: each payment ends exactly once."""
    state, port = kkmserver
    with sa.create_engine(shop_schema).begin() as conn:
        insert_payment(conn, sale_items(1))
        insert_payment(conn, sale_items(2))
    settings, ledger_url = setup(tmp_path, shop_schema, port, options="timeout=3&wait=1&deadline_s=30&poll_ms=100")
    run_cli(settings, "run", "--burst", "--burst-timeout", "120", timeout=180, env=env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 2 and report.documents == 2, report.summary()
