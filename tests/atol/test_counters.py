"""ATOL's getShiftTotals: the emulator over Web Requests with a literal JSON task, and the driver's
decoder on a hand-written answer shaped like the TypeScript client's ``ShiftTotals`` type
(kkt_drivers/atol/counters.py names the source) — neither side uses the other's code."""
from __future__ import annotations

from decimal import Decimal

import pytest

from kkt_drivers.atol import counters as ac
from kkt_drivers.atol import tasks as t
from tests.atol.test_emulator_wire import SELL, open_shift, post, result

D = Decimal
TOTALS = '{"uuid": "%s", "request": [{"type": "getShiftTotals"}]}'

ANSWER = """{"shiftTotals": {"shiftNumber": 7, "cashDrawer": {"sum": 1500.5},
  "income": {"count": 1, "sum": 1000}, "outcome": {"count": 0, "sum": 0},
  "receipts": {
    "sell": {"count": 3, "sum": 2400.55, "payments": {"cash": 1200.5, "electronically": 1000.05,
             "credit": 0, "prepaid": 0, "other": 0, "userPaymentType-1": 200, "userPaymentType-2": 0}},
    "sellReturn": {"count": 1, "sum": 99.9, "payments": {"cash": 0, "electronically": 99.9, "credit": 0,
                   "prepaid": 0, "other": 0}},
    "buy": {"count": 0, "sum": 0, "payments": {"cash": 0, "electronically": 0, "credit": 0, "prepaid": 0, "other": 0}},
    "buyReturn": {"count": 0, "sum": 0}}}}"""


def test_a_hand_written_answer_decodes_to_exact_counters() -> None:
    totals = ac.decode(t.loads(ANSWER))
    assert totals.shift_number == 7 and totals.source == "ATOL getShiftTotals"
    sale = totals.operations["sale"]
    assert (sale.count, sale.amount) == (3, D("2400.55"))
    assert sale.by_payment == {"cash": D("1200.50"), "electronic": D("1200.05")}   # user type 1 is electronic
    assert totals.amount("sale_refund") == D("99.90") and totals.operations["expense_refund"].by_payment == {}


@pytest.mark.parametrize("bad", ['{"shiftTotals": {"receipts": {}}}', '{"shiftTotals": {"shiftNumber": 1}}',
                                 ANSWER.replace('"count": 3', '"count": "3"')])
def test_a_malformed_answer_is_refused(bad: str) -> None:
    with pytest.raises(ac.CountersError):
        ac.decode(t.loads(bad))


def test_the_emulator_answers_get_shift_totals_over_web_requests(atol_server) -> None:
    srv = atol_server()
    open_shift(srv)
    uid = "0ba40014-5fa5-11ea-b5e9-037d4786a4a0"
    assert post(srv, SELL % uid).status_code == 201
    assert result(srv, uid).json()["results"][0]["status"] == "ready"
    srv.model.tamper_counter("sale", "0.05", "cash")          # the register's own counter drifts
    uid = "0ba40014-5fa5-11ea-b5e9-037d4786a4a1"
    assert post(srv, TOTALS % uid).status_code == 201
    body = result(srv, uid).json()["results"][0]
    assert body["status"] == "ready"
    shift = body["result"]["shiftTotals"]
    assert shift["shiftNumber"] == 1
    sell = shift["receipts"]["sell"]
    assert sell["count"] == 1 and D(str(sell["sum"])) == D("73.20")
    assert D(str(sell["payments"]["electronically"])) == D("73.15") and D(str(sell["payments"]["cash"])) == D("0.05")
    assert shift["receipts"]["sellReturn"]["count"] == 0 and "userPaymentType-1" in sell["payments"]
