"""The worker end to end through a Shtrih-M register speaking the binary protocol over TCP.

The register is a separate process (`kkt-worker emulator shtrih`), so a SIGKILL of the worker right
after the close command (FF45) was written leaves a fiscalized document the worker never heard of —
the case every earlier bridge got wrong. Reconciliation must find it by its tag via FF0A/FF3A.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from tests.chaos.invariants import check
from tests.e2e import crash_then_restart, emulator_process, marker_args, one_register
from tests.shop import free_port, insert_payment, receipts_by_tag, run_cli, sale_items

pytestmark = pytest.mark.acceptance


@pytest.fixture
def shtrih(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    """An emulated Shtrih-M register in its own process; faults from the test's `faults` marker."""
    port, state = free_port(), tmp_path / "shtrih"
    args = marker_args(request, "faults")
    if args[:1] == ["answer_delay_s"]:          # a slow register rather than a fault
        faults = ["--answer-delay-s", args[1]]
    else:
        faults = [f"--fault={f}" for f in args]
    with emulator_process(["worker", "emulator", "shtrih", str(state), "--port", str(port), "--seed", "3", *faults],
                          port):
        yield state, port


def setup(tmp_path: Path, shop: sa.URL, port: int, timeout: float = 3) -> tuple[Path, str]:
    return one_register(tmp_path, shop, "shtrih1", f"shtrih+socket://127.0.0.1:{port}?timeout={timeout}")


def test_sales_and_refund_through_shtrih(shop_schema: sa.URL, tmp_path: Path, shtrih) -> None:
    """Payments in MariaDB → receipts on the Shtrih-M emulator → done rows, tags matching."""
    state, port = shtrih
    with sa.create_engine(shop_schema).begin() as conn:
        sale = insert_payment(conn, sale_items(3, "199.99"))
        insert_payment(conn, sale_items(2))
        insert_payment(conn, [dict(sale_items(1, "199.99")[0])], kind="refund", refund_of=sale)
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 3, report.summary()
    docs = receipts_by_tag(state)
    assert docs["R3"][0]["operation"] == 2 and docs["S1"][0]["total"] == "599.97"
    assert docs["S1"][0]["requisites"]["1008"] == "buyer@example.ru"


@pytest.mark.parametrize("point", ["after_close_sent", "after_register_answered"])
def test_sigkill_after_ff45_then_restart(shop_schema: sa.URL, tmp_path: Path, shtrih, point: str) -> None:
    """Kill -9 once FF45 is on the wire: the register has the document; the restart finds it by tag."""
    state, port = shtrih
    settings, ledger_url = setup(tmp_path, shop_schema, port)
    report = crash_then_restart(shop_schema, settings, ledger_url, state, point)
    assert report.ok and report.done == 3 and report.documents == 3, report.summary()


@pytest.mark.faults("lose_reply_after_close=0.15", "lose_reply_before_close=0.1", "fail_before_send=0.1",
                    "drop_answer=0.03", "corrupt_lrc=0.05", "paper_out_mid_receipt=0.03")
def test_wire_faults_are_resolved_exactly_once(shop_schema: sa.URL, tmp_path: Path, shtrih) -> None:
    """A Shtrih-M that drops answers, corrupts frames and loses the link around FF45: all done, once."""
    state, port = shtrih
    with sa.create_engine(shop_schema).begin() as conn:
        for i in range(20):
            insert_payment(conn, sale_items(1 + i % 3))
    settings, ledger_url = setup(tmp_path, shop_schema, port, timeout=1)
    run_cli(settings, "run", "--burst", "--burst-timeout", "240", timeout=300)
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 20, report.summary()


@pytest.mark.faults("answer_delay_s", "1.3")
def test_register_slower_than_the_timeout(shop_schema: sa.URL, tmp_path: Path, shtrih) -> None:
    """Every answer comes 1.3 s late, the driver's timeout is 1 s: the driver asks again with ENQ instead of
    resending (the register holds the pending answer), and every payment still ends exactly once."""
    state, port = shtrih
    with sa.create_engine(shop_schema).begin() as conn:
        insert_payment(conn, sale_items(1))
    settings, ledger_url = setup(tmp_path, shop_schema, port, timeout=1)
    run_cli(settings, "run", "--burst", "--burst-timeout", "240", timeout=300)
    report = check(shop_schema, ledger_url, [state])
    assert report.ok and report.done == 1, report.summary()


def test_check_refuses_a_register_that_prints_20_percent_as_22(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Table 17 field 71 = 1 (the factory default) would print 2025 refunds at 22 %: `kkt-worker check`
    names the setting instead of letting a lane start."""
    port = free_port()
    with emulator_process(["kkt_drivers.shtrih.server", str(tmp_path / "factory"), "--port", str(port),
                           "--table", "17,1,71=1"], port):
        settings, _ = setup(tmp_path, shop_schema, port)
        out = run_cli(settings, "check", check=False)
        assert out.returncode == 1
        line = next(ln for ln in out.stdout.splitlines() if "register shtrih1" in ln)
        assert line.startswith("[FAIL]") and "table 17 row 1 field 71" in line and "must be 2" in line
