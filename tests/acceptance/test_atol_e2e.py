"""The worker end to end through an ATOL register behind ATOL Web Requests (HTTP, JSON tasks).

The emulated service is a separate process (``python -m kkt_drivers.atol.server``), so a SIGKILL of
the worker after its POST leaves a request the service still executes; the restart must find it by
its uuid (derived from the receipt's tag), never print a second receipt.
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

PASSWORD = "s3cret-atol"
DRIVER_OPTIONS = "user=kkt&password_env=KKT_ATOL_PASSWORD&timeout=2&fiscal_timeout=10&status_timeout=10&poll_s=0.05"


@pytest.fixture
def atol(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    """An emulated ATOL Web Requests in its own process; extra CLI arguments from the test's `faults` marker."""
    port, state = free_port(), tmp_path / "atol"
    with emulator_process(["kkt_drivers.atol.server", str(state), "--port", str(port), "--seed", "3",
                           "--block-s", "0.5", "--user", "kkt:ATOL_EMULATOR_PASSWORD", *marker_args(request, "faults")],
                          port, cli_env(ATOL_EMULATOR_PASSWORD=PASSWORD)):
        yield state, port


def setup(tmp_path: Path, shop: sa.URL, port: int, options: str = DRIVER_OPTIONS) -> tuple[Path, str]:
    return one_register(tmp_path, shop, "atol1", f"atol+http://127.0.0.1:{port}?{options}", worker_env())


def attempts(ledger_url: str) -> list[tuple[str, str | None, str | None]]:
    """(action, outcome, error) of every attempt the worker recorded, in order."""
    with sa.create_engine(ledger_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT action, outcome, error FROM attempts ORDER BY id")).all()
    return [tuple(r) for r in rows]


def worker_env(**extra: str) -> dict[str, str]:
    return cli_env(KKT_ATOL_PASSWORD=PASSWORD, **extra)


def test_sales_and_refund_through_atol(shop_schema: sa.URL, tmp_path: Path, atol) -> None:
    """Payments in MariaDB → sell/sellReturn tasks → done rows, one document per tag, 1008 and 1192 set."""
    state, port = atol
    with sa.create_engine(shop_schema).begin() as conn:
        sale = insert_payment(conn, sale_items(3, "199.99"))
        insert_payment(conn, sale_items(2))
        insert_payment(conn, [dict(sale_items(1, "199.99")[0])], kind="refund", refund_of=sale)
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=worker_env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 3, report.summary()
    docs = receipts_by_tag(state)
    assert docs["R3"][0]["operation"] == 2 and docs["S1"][0]["total"] == "599.97"
    assert docs["S1"][0]["requisites"]["1008"] == "buyer@example.ru"
    assert docs["S1"][0]["items"][0]["vat"] == 11  # vat22 reached the register as 1199 = 11


@pytest.mark.parametrize("point", ["after_close_sent", "after_register_answered"])
def test_sigkill_after_submit_then_restart(shop_schema: sa.URL, tmp_path: Path, atol, point: str) -> None:
    """Kill -9 once the POST was taken: the service finishes it; the restart finds it by uuid, no reprint."""
    state, port = atol
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    report = crash_then_restart(shop_schema, settings, ledger_url, state, point, worker_env())
    assert report.ok and report.done == 3 and report.documents == 3, report.summary()


@pytest.mark.parametrize("fault", [
    pytest.param(f, marks=pytest.mark.faults("--fault", f), id=f.split("=")[0])
    for f in ("lose_reply_after_close=first:1", "lose_reply_before_close=first:1")])
def test_blocked_queue_is_resolved_by_the_fd_counter(shop_schema: sa.URL, tmp_path: Path, atol, fault: str) -> None:
    """The register link breaks inside the first receipt: the service blocks, then resolves by the FD
    counter (document made → ready; not made → error). Either way every payment ends done, once."""
    state, port = atol
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(3):
            insert_payment(conn, sale_items(1))
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=worker_env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 3 and report.documents == 3, report.summary()
    seen = attempts(ledger_url)
    assert seen[0][:2] == ("send", None), seen   # the first send ended with its outcome unknown
    expected = "reconciled_done" if fault.startswith("lose_reply_after_close") else "reconciled_retry"
    assert ("reconcile", expected) in [(a, o) for a, o, _ in seen], seen


@pytest.mark.faults("--fault", "lose_http_reply_after_ready=first:1")
def test_lost_200_after_ready_is_read_again_by_uuid(shop_schema: sa.URL, tmp_path: Path, atol) -> None:
    """The answer carrying the first receipt's ready result is lost on the way back: outcome unknown,
    then recovery reads the same uuid and finds the document — one receipt, not two."""
    state, port = atol
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(2):
            insert_payment(conn, sale_items(1))
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=worker_env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 2 and report.documents == 2, report.summary()
    seen = attempts(ledger_url)
    assert ("reconcile", "reconciled_done") in [(a, o) for a, o, _ in seen], seen


@pytest.mark.faults("--fault", "lose_reply_after_close=0.15", "--fault", "lose_reply_before_close=0.1",
                    "--fault", "fail_before_send=0.1", "--fault", "lose_http_reply_after_ready=0.1",
                    "--fault", "paper_out_mid_receipt=0.05", "--fault", "fn_error=0.05")
def test_register_and_link_faults_are_resolved_exactly_once(shop_schema: sa.URL, tmp_path: Path, atol) -> None:
    """An ATOL service whose register link breaks around the close, loses answers and runs out of paper:
    all payments done, each exactly once."""
    state, port = atol
    with sa.create_engine(shop_schema).begin() as conn:
        for i in range(12):
            insert_payment(conn, sale_items(1 + i % 3))
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    run_cli(settings, "run", "--burst", "--burst-timeout", "240", timeout=300, env=worker_env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 12, report.summary()


@pytest.mark.faults("--task-delay-s", "0.8")
def test_register_slower_than_the_fiscal_timeout(shop_schema: sa.URL, tmp_path: Path, atol) -> None:
    """Every subtask takes 0.8 s, the driver waits 0.5 s for a receipt: each send ends "unknown", the
    request finishes in the service anyway, and recovery by uuid records it — one receipt per payment."""
    state, port = atol
    with sa.create_engine(shop_schema).begin() as conn:
        for _ in range(2):
            insert_payment(conn, sale_items(1))
    settings, ledger_url = setup(tmp_path, shop_schema, port,
                                 DRIVER_OPTIONS.replace("fiscal_timeout=10", "fiscal_timeout=0.5"))
    run_cli(settings, "run", "--burst", "--burst-timeout", "120", timeout=180, env=worker_env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 2 and report.documents == 2, report.summary()
    assert ("reconcile", "reconciled_done") in [(a, o) for a, o, _ in attempts(ledger_url)]
