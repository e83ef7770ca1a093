"""One contract for the registers' own shift counters (``Driver.shift_totals``), every driver.

The counters a driver reads (Z report, FN shift totals, Shtrih cash/operational registers, ATOL's
getShiftTotals, KKMServer's GetCounters, jsontcp's shift_totals) must equal what the register
model's journal says, and a counter the register itself got wrong (``tamper_counter``) must come
through the driver unchanged, so the accountant's report can show it. A driver that cannot read
counters says so (``reads_counters`` False) and the report lists it as "counters not available".
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from kkt_drivers.receipt import Operation, Payment, PaymentType
from tests.contract import test_driver_contract as contract
from tests.contract.test_driver_contract import Factory, Register, receipt

make_register = contract.make_register          # the same fixture: every driver with an emulator

D = Decimal


def counting(make: Factory) -> Register:
    reg = make()
    if not reg.driver.reads_counters:
        pytest.skip(f"{reg.driver.model}: the register's counters are not available through this API")
    reg.driver.open_shift()
    return reg


def test_shift_counters_add_up_the_registers_own_receipts(make_register: Factory) -> None:
    reg = counting(make_register)
    cash = replace(receipt("cnt-2"), payments=(Payment(PaymentType.CASH, D("1200.00")),))
    for r in (receipt("cnt-1"), cash, receipt("cnt-3", Operation.SALE_REFUND)):
        reg.driver.fiscalize(r)
    shift = reg.driver.status().shift_number
    totals = reg.driver.shift_totals(shift)
    assert totals is not None and totals.shift_number == shift and totals.source
    assert totals.amounts()["sale"] == D("2400.00") and totals.amount("sale_refund") == D("1200.00")
    assert totals.amount("expense") == totals.amount("expense_refund") == D("0.00")
    sale = totals.operations["sale"]
    assert sale.count in (2, None)                     # None: the register does not count receipts
    if sale.by_payment:
        assert sale.by_payment["cash"] == D("1200.00") and sale.by_payment["electronic"] == D("1200.00")
        assert totals.operations["sale_refund"].by_payment.get("electronic") == D("1200.00")


def test_a_counter_the_register_got_wrong_comes_through_unchanged(make_register: Factory) -> None:
    reg = counting(make_register)
    reg.driver.fiscalize(receipt("cnt-4"))
    reg.model.tamper_counter("sale", "1.00", "electronic")
    totals = reg.driver.shift_totals(reg.driver.status().shift_number)
    assert totals is not None and totals.amount("sale") == D("1201.00")
    if totals.operations["sale"].by_payment:
        assert totals.operations["sale"].by_payment["electronic"] == D("1201.00")


def test_counters_of_a_shift_the_register_does_not_hold_are_none(make_register: Factory) -> None:
    reg = counting(make_register)
    assert reg.driver.shift_totals(reg.driver.status().shift_number + 5) is None


def test_a_closed_shifts_counters_are_its_z_reports_or_none(make_register: Factory) -> None:
    """After the Z report a driver gives that shift's final numbers (the emulator, Shtrih from the FN,
    jsontcp) or the last shift's as the API keeps them (ATOL, KKMServer), or None: never other numbers."""
    reg = counting(make_register)
    reg.driver.fiscalize(receipt("cnt-5"))
    shift = reg.driver.status().shift_number
    reg.driver.close_shift()
    totals = reg.driver.shift_totals(shift)
    if reg.driver.model in ("emulator", "shtrih-m", "jsontcp"):
        assert totals is not None and totals.final
    if totals is not None:
        assert totals.shift_number == shift and totals.amount("sale") == D("1200.00")
