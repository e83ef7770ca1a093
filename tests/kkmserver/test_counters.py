"""KKMServer's GetCounters: the emulator driven by a hand-written command, and the driver's decoder
on a hand-written answer shaped like salesduck/kkmserver-types ``GetCounters.ts`` (Cyrillic "С" in
``Сounters``/``СountersType`` as the type writes it, and the Latin spelling)."""
from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from kkt_drivers.kkmserver import counters as kc
from tests.kkmserver.conftest import execute
from tests.kkmserver.test_emulator_wire import VENDOR_STYLE_SALE

D = Decimal
C = "\u0421"    # the Cyrillic capital "С" of the type's field names


def answer(cyrillic: bool = True) -> dict:
    k = C if cyrillic else "C"
    row = lambda kind, rt, count, total, cash, card: {  # noqa: E731
        f"{k}ountersType": kind, "ReceiptType": rt, "Count": count, "Sum": D(total), "Cash": D(cash),
        "ElectronicPayment": D(card), "AdvancePayment": 0, "Credit": 0, "CashProvision": 0,
        "Tax20": 0, "Tax10": 0, "Tax0": 0, "TaxNo": 0, "Tax120": 0, "Tax110": 0,
        "CorrectionsCount": 0, "CorrectionsSum": 0}
    return {"Status": 0, f"{k}ounters": [
        row("Total", "Shell", 40, "99999.00", "50000.00", "49999.00"),
        row("Shift", "Shell", 2, "248.70", "100.00", "148.70"),
        row("Shift", "ShellReturn", 1, "25.25", "0", "25.25"),
        row("Shift", "Buy", 0, "0", "0", "0"), row("Shift", "BuyReturn", 0, "0", "0", "0")]}


@pytest.mark.parametrize("cyrillic", [True, False])
def test_the_shift_counters_of_a_hand_written_answer(cyrillic: bool) -> None:
    totals = kc.decode(answer(cyrillic), 3)
    assert totals.shift_number == 3 and totals.operations["sale"].count == 2
    assert totals.amount("sale") == D("248.70")          # the Shift row, not the FN's Total
    assert totals.operations["sale"].by_payment == {"cash": D("100.00"), "electronic": D("148.70")}
    assert totals.amount("sale_refund") == D("25.25") and totals.amount("expense") == D("0.00")


def test_an_answer_without_shift_counters_is_refused() -> None:
    bad = answer()
    bad[f"{C}ounters"] = [r for r in bad[f"{C}ounters"] if r[f"{C}ountersType"] == "Total"]
    with pytest.raises(kc.CountersError):
        kc.decode(bad, 1)


def test_the_emulator_answers_get_counters(make_server) -> None:
    srv = make_server()
    assert execute(srv, {"Command": "OpenShift", "NumDevice": 0, "IdCommand": "c-open", "CashierName": "И"})["Status"] == 0
    assert execute(srv, copy.deepcopy(VENDOR_STYLE_SALE))["Status"] == 0
    got = execute(srv, {"Command": "GetCounters", "NumDevice": 0, "IdCommand": "c-counters"})
    assert got["Status"] == 0, got
    shift = {r["ReceiptType"]: r for r in got[f"{C}ounters"] if r[f"{C}ountersType"] == "Shift"}
    assert shift["Shell"]["Count"] == 1 and shift["Shell"]["Sum"] == D("148.70")
    assert shift["Shell"]["ElectronicPayment"] == D("148.70") and shift["Shell"]["Cash"] == D("0.00")
    assert shift["ShellReturn"]["Count"] == 0 and set(shift) == {"Shell", "ShellReturn", "Buy", "BuyReturn"}
    total = {r["ReceiptType"]: r for r in got[f"{C}ounters"] if r[f"{C}ountersType"] == "Total"}
    assert total["Shell"]["Sum"] == D("148.70")
