"""The worker end to end through the ATOL Online and jsontcp drivers, each emulator in its own process.

ATOL Online: payments in MariaDB → ``POST sell`` over HTTP to the emulator → report polled → done
rows; the emulator's register journal is the ground truth. A SIGKILL after the registration was
accepted (``after_close_sent``) or after the report said done (``after_register_answered``) leaves
a receipt the worker never recorded; the restart finds it by external_id (error 33 → the first
uuid → report), never registering it twice.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from tests.chaos.invariants import check
from tests.e2e import crash_then_restart, emulator_process, marker_args, one_register
from tests.shop import cli_env, free_port, insert_payment, receipts_by_tag, run_cli, sale_items

pytestmark = pytest.mark.acceptance

ATOL_PASSWORD_ENV = "ATOL_ONLINE_EMULATOR_PASSWORD"
ATOL_PASSWORD = "emulator-secret"


@pytest.fixture
def atol_online(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    """The ATOL Online emulator in its own process; extra arguments from the test's `server_args` marker."""
    port, state = free_port(), tmp_path / "atol-online"
    with emulator_process(["kkt_drivers.atol_online.server", str(state), "--port", str(port), "--seed", "5",
                           *marker_args(request, "server_args")], port):
        yield state, port


def atol_url(port: int) -> str:
    return (f"atol-online+http://127.0.0.1:{port}/possystem/v5?login=kkt-worker&password_env={ATOL_PASSWORD_ENV}"
            "&group=emulator-group&inn=5544332219&payment_address=https://shop.example.ru&email=shop@example.ru"
            "&timeout=2&report_deadline_s=5&poll_interval_s=0.05")


def setup(tmp_path: Path, shop: sa.URL, url: str) -> tuple[Path, str]:
    return one_register(tmp_path, shop, "cloud1", url)


def env(**extra: str) -> dict[str, str]:
    return cli_env(**{ATOL_PASSWORD_ENV: ATOL_PASSWORD}, **extra)


def test_sales_and_refund_through_atol_online(shop_schema: sa.URL, tmp_path: Path, atol_online) -> None:
    """Payments in MariaDB → receipts registered at the emulated ATOL Online → done rows, tags matching."""
    state, port = atol_online
    with sa.create_engine(shop_schema).begin() as conn:
        sale = insert_payment(conn, sale_items(3, "199.99"))
        insert_payment(conn, sale_items(2))
        insert_payment(conn, [dict(sale_items(1, "199.99")[0])], kind="refund", refund_of=sale)
    settings, ledger_url = setup(tmp_path, shop_schema, atol_url(port))
    run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=env())
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 3, report.summary()
    docs = receipts_by_tag(state)
    assert docs["R3"][0]["operation"] == 2 and docs["S1"][0]["total"] == "599.97"
    assert docs["S1"][0]["requisites"]["1008"] == "buyer@example.ru"
    assert docs["S1"][0]["requisites"]["1187"] == "https://shop.example.ru"


def test_https_with_a_self_signed_certificate(shop_schema: sa.URL, tmp_path: Path) -> None:
    """The emulator on HTTPS (a certificate made by openssl now), the worker verifying it against that CA."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port, state = free_port(), tmp_path / "atol-online-tls"
    with emulator_process(["kkt_drivers.atol_online.server", str(state), "--port", str(port),
                           "--certfile", str(cert), "--keyfile", str(key)], port):
        with sa.create_engine(shop_schema).begin() as conn:
            insert_payment(conn, sale_items(2))
        url = atol_url(port).replace("atol-online+http://", "atol-online+https://") + f"&verify={cert}"
        settings, ledger_url = setup(tmp_path, shop_schema, url)
        run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=env())
        report = check(shop_schema, ledger_url, [state])
        assert report.ok and report.done == 1 and report.documents == 1, report.summary()


@pytest.mark.parametrize("point", ["after_close_sent", "after_register_answered"])
def test_sigkill_after_registration_then_restart(shop_schema: sa.URL, tmp_path: Path, atol_online,
                                                point: str) -> None:
    """Kill -9 once the second registration was accepted: the restart finds it by external_id, once."""
    state, port = atol_online
    settings, ledger_url = setup(tmp_path, shop_schema, atol_url(port))
    report = crash_then_restart(shop_schema, settings, ledger_url, state, point, env())
    assert report.ok and report.done == 3 and report.documents == 3, report.summary()
    assert all(len(docs) == 1 for docs in receipts_by_tag(state).values())


@pytest.mark.server_args("--fault", "lose_reply_after_close=0.2", "--fault", "lose_reply_before_close=0.1",
                         "--fault", "fail_before_send=0.1", "--fault", "rate_limit=0.05",
                         "--fault", "fn_error=0.05", "--done-delay-s", "0.2")
def test_service_faults_are_resolved_exactly_once(shop_schema: sa.URL, tmp_path: Path, atol_online) -> None:
    """Lost answers, 429s, failed registrations and a slow report: every payment done, once."""
    state, port = atol_online
    with sa.create_engine(shop_schema).begin() as conn:
        for i in range(12):
            insert_payment(conn, sale_items(1 + i % 3))
    settings, ledger_url = setup(tmp_path, shop_schema, atol_url(port))
    run_cli(settings, "run", "--burst", "--burst-timeout", "180", env=env(), timeout=240)
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 12, report.summary()


# -- the length-prefixed JSON bridge (jsontcp) ---------------------------------------------------
JSONTCP_ENV = {"JSONTCP_EMULATOR_PASSWORD": "cashier-secret", "JSONTCP_EMULATOR_CONNECTION_PASSWORD": "bridge-secret"}


@pytest.fixture
def jsontcp(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    """The bridge emulator in its own process; extra arguments from the test's `server_args` marker."""
    port, state = free_port(), tmp_path / "jsontcp"
    with emulator_process(["kkt_drivers.jsontcp.server", str(state), "--port", str(port), "--seed", "5",
                           *marker_args(request, "server_args")], port):
        yield state, port


def jsontcp_url(port: int) -> str:
    return (f"jsontcp://127.0.0.1:{port}?login=kassa&password_env=JSONTCP_EMULATOR_PASSWORD"
            "&connection_password_env=JSONTCP_EMULATOR_CONNECTION_PASSWORD&timeout=2&close_timeout=3")


def test_sales_and_refund_through_jsontcp(shop_schema: sa.URL, tmp_path: Path, jsontcp) -> None:
    """Payments in MariaDB → receipts over the JSON bridge → done rows, tags matching the journal."""
    state, port = jsontcp
    with sa.create_engine(shop_schema).begin() as conn:
        sale = insert_payment(conn, sale_items(3, "199.99"))
        insert_payment(conn, sale_items(2))
        insert_payment(conn, [dict(sale_items(1, "199.99")[0])], kind="refund", refund_of=sale)
    settings, ledger_url = setup(tmp_path, shop_schema, jsontcp_url(port))
    run_cli(settings, "run", "--burst", "--burst-timeout", "60", env=cli_env(**JSONTCP_ENV))
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 3, report.summary()
    docs = receipts_by_tag(state)
    assert docs["R3"][0]["operation"] == 2 and docs["S1"][0]["total"] == "599.97"


@pytest.mark.parametrize("point", ["after_close_sent", "after_register_answered"])
def test_sigkill_after_close_over_jsontcp_then_restart(shop_schema: sa.URL, tmp_path: Path, jsontcp,
                                                       point: str) -> None:
    """Kill -9 once close_receipt is on the wire: the restart reads document(n) and finds the tag."""
    state, port = jsontcp
    settings, ledger_url = setup(tmp_path, shop_schema, jsontcp_url(port))
    report = crash_then_restart(shop_schema, settings, ledger_url, state, point, cli_env(**JSONTCP_ENV))
    assert report.ok and report.done == 3 and report.documents == 3, report.summary()


@pytest.mark.server_args("--fault", "lose_reply_after_close=0.15", "--fault", "lose_reply_before_close=0.1",
                         "--fault", "fail_before_send=0.1", "--fault", "paper_out_mid_receipt=0.03")
def test_bridge_faults_are_resolved_exactly_once(shop_schema: sa.URL, tmp_path: Path, jsontcp) -> None:
    """A bridge that drops the link around close_receipt and runs out of paper: all done, once."""
    state, port = jsontcp
    with sa.create_engine(shop_schema).begin() as conn:
        for i in range(12):
            insert_payment(conn, sale_items(1 + i % 3))
    settings, ledger_url = setup(tmp_path, shop_schema, jsontcp_url(port))
    run_cli(settings, "run", "--burst", "--burst-timeout", "180", env=cli_env(**JSONTCP_ENV), timeout=240)
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 12, report.summary()
