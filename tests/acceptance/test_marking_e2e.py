"""Marked goods end to end: MariaDB shop with payment_item_codes → real CLI → emulated register journal.

Slow-ish (several CLI runs, ~20 s). The emulated FN checks every code before the receipt opens;
what ОИСМ answers is set on the register's state (shared with the CLI's process).
"""
from __future__ import annotations

import base64
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from kkt_drivers import marking as mk
from kkt_drivers.emulator.model import RegisterModel
from tests.shop import insert_codes, insert_payment, receipts_by_tag, run_cli, write_settings

pytestmark = pytest.mark.acceptance


def code(n: int) -> bytes:
    return mk.build_gs1("04650194496163", f"E{n:05d}", check_code="dGVz")


def line(line_no: int, qty: int, price: str = "10.00", name: str = "Товар") -> dict:
    return {"line_no": line_no, "name": f"{name} {line_no}", "price": Decimal(price), "quantity": Decimal(qty),
            "amount": Decimal(price) * qty, "vat": "vat22"}


def setup_run(tmp_path: Path, shop_url: sa.URL) -> tuple[Path, Path]:
    reg = tmp_path / "reg"
    settings = write_settings(
        tmp_path / "settings.yaml", source={"mapping": {"codes_table": "payment_item_codes"}},
        source_url=shop_url.render_as_string(hide_password=False),
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", registers=[("kkt1", f"emulator://{reg}?seed=5")])
    run_cli(settings, "migrate")
    return settings, reg


def ledger(tmp_path: Path) -> dict[str, tuple]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return {r[0]: r[1:] for r in db.execute("SELECT tag, state, last_error FROM receipts")}


def test_marked_orders_declined_code_refund_and_split(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given a marked + unmarked order, an order with a code ОИСМ declines, a refund of the first
    order's marked line and a 200-code order, when `run --burst` runs, then the journal holds the
    sale with each code on its own line (2106 = 0x0F), no receipt for the declined order (rejected
    naming the line), the refund with the same codes (2003 = 3), and the big order in two receipts."""
    declined = code(900)
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        s1 = insert_payment(conn, [line(1, 2, "99.90", "Молоко"), line(2, 1, "5.00", "Пакет")])
        insert_codes(conn, s1, 1, [code(1), base64.b64encode(code(2)).decode()])   # raw and base64
        s2 = insert_payment(conn, [line(1, 1)])
        insert_codes(conn, s2, 1, [declined])
        s4 = insert_payment(conn, [line(1, 200, "1.00", "Вода")])
        insert_codes(conn, s4, 1, [code(1000 + n) for n in range(200)])
    settings, reg = setup_run(tmp_path, shop_schema)
    RegisterModel(reg).set_marking_verdict(declined, "invalid")
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    with eng.begin() as conn:
        r5 = insert_payment(conn, [line(1, 2, "99.90", "Молоко")], kind="refund", refund_of=s1)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")

    docs = receipts_by_tag(reg)
    sale = docs["S1"][0]
    marks = [i.get("marking") for i in sale["items"]]
    assert [m["2000"] if m else None for m in marks] == [base64.b64encode(code(1)).decode(),
                                                         base64.b64encode(code(2)).decode(), None]
    assert [m["2106"] for m in marks if m] == [0x0F, 0x0F] and sale["2107"] == 0
    assert [i["subject"] for i in sale["items"]] == [33, 33, 1] and sale["total"] == "204.80"

    assert "S2" not in docs
    state, error = ledger(tmp_path)["S2"]
    assert state == "rejected" and "items[0].marking_code" in error and "declined" in error

    refund = docs[f"R{r5}"][0]
    assert refund["operation"] == 2
    assert [(i["marking"]["2000"], i["marking"]["2003"]) for i in refund["items"]] == [
        (base64.b64encode(code(1)).decode(), 3), (base64.b64encode(code(2)).decode(), 3)]

    # the FN's 2106 of each code is kept in the ledger with the receipt, and `ledger show` names it
    shown = run_cli(settings, "ledger", "show", str(s1)).stdout
    assert "marking code line 0: 04650194496163/E00001 — crypto part valid, ОИСМ: planned status correct (2106=0x0F)" \
        in shown and "marking code line 1: 04650194496163/E00002" in shown
    as_json = json.loads(run_cli(settings, "ledger", "show", str(s1), "--output", "json").stdout)
    assert [(m["line"], m["result_2106"], base64.b64decode(m["code"])) for m in as_json[0]["marking_results"]] == [
        (0, 0x0F, code(1)), (1, 0x0F, code(2))]

    big = [docs[t][0] for t in sorted(t for t in docs if t.startswith(f"S{s4}"))]
    assert len(big) == 2 and all(len(d["items"]) <= 128 for d in big)
    assert sum(len(d["items"]) for d in big) == 200
    assert sum(Decimal(d["total"]) for d in big) == Decimal("200.00")


def test_late_answer_pauses_the_lane_and_sells_nothing_until_it_comes(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given the register cannot reach ОИСМ (OFD link down), when the worker runs, then the marked
    order is not sold (no receipt, the lane pauses with marking_check_timeout) and, once the link is
    back, it is sold exactly once."""
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        s1 = insert_payment(conn, [line(1, 1)])
        insert_codes(conn, s1, 1, [code(7)])
    settings, reg = setup_run(tmp_path, shop_schema)
    model = RegisterModel(reg)
    model.ofd_link(False)
    run_cli(settings, "run", "--burst", "--burst-timeout", "4", check=False)
    assert "S1" not in receipts_by_tag(reg)
    state, error = ledger(tmp_path)["S1"]
    assert state != "done" and "no answer from ОИСМ in time" in (error or "")
    model.ofd_link(True)
    run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    assert len(receipts_by_tag(reg)["S1"]) == 1


def test_marked_orders_through_an_atol_register_process(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Given the ATOL Web Requests emulator in its own process, a marked + unmarked order, an order whose
    code ОИСМ declines and a refund of the first order, when the worker runs, then the sale carries each
    code with 2106 = 0x0F (checked through begin/status/accept before the sell task), the declined
    order is rejected naming the line with no receipt, the refund carries the same codes with 2003 = 3,
    and the ledger keeps each code's 2106."""
    import subprocess
    import sys

    from tests.shop import cli_env, free_port, wait_serving

    declined = code(901)
    eng = sa.create_engine(shop_schema)
    with eng.begin() as conn:
        s1 = insert_payment(conn, [line(1, 2, "99.90", "Молоко"), line(2, 1, "5.00", "Пакет")])
        insert_codes(conn, s1, 1, [code(11), code(12)])
        s2 = insert_payment(conn, [line(1, 1)])
        insert_codes(conn, s2, 1, [declined])
    port, state = free_port(), tmp_path / "atol"
    proc = subprocess.Popen([sys.executable, "-m", "kkt_drivers.atol.server", str(state), "--port", str(port)],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_serving(proc, port)
        RegisterModel(state).set_marking_verdict(declined, "invalid")
        settings = write_settings(
            tmp_path / "settings.yaml", source={"mapping": {"codes_table": "payment_item_codes"}},
            source_url=shop_schema.render_as_string(hide_password=False),
            ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
            registers=[("atol1", f"atol+http://127.0.0.1:{port}?timeout=2&fiscal_timeout=10&status_timeout=10"
                                 "&poll_s=0.02&marking_timeout=5&marking_poll_s=0.05")])
        run_cli(settings, "migrate")
        run_cli(settings, "run", "--burst", "--burst-timeout", "60")
        with eng.begin() as conn:
            r3 = insert_payment(conn, [line(1, 2, "99.90", "Молоко")], kind="refund", refund_of=s1)
        run_cli(settings, "run", "--burst", "--burst-timeout", "60")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    docs = receipts_by_tag(state)
    sale = docs[f"S{s1}"][0]
    assert [(i["marking"]["2000"], i["marking"]["2106"], i["marking"]["2003"]) for i in sale["items"] if "marking" in i] == [
        (base64.b64encode(code(11)).decode(), 0x0F, 1), (base64.b64encode(code(12)).decode(), 0x0F, 1)]
    assert [i["subject"] for i in sale["items"]] == [33, 33, 1] and sale["2107"] == 0
    assert f"S{s2}" not in docs
    state_s2, error = ledger(tmp_path)[f"S{s2}"]
    assert state_s2 == "rejected" and "items[0].marking_code" in error and "declined" in error
    refund = docs[f"R{r3}"][0]
    assert [(i["marking"]["2000"], i["marking"]["2003"]) for i in refund["items"]] == [
        (base64.b64encode(code(11)).decode(), 3), (base64.b64encode(code(12)).decode(), 3)]
    as_json = json.loads(run_cli(settings, "ledger", "show", str(s1), "--output", "json").stdout)
    assert [m["result_2106"] for m in as_json[0]["marking_results"]] == [0x0F, 0x0F]
