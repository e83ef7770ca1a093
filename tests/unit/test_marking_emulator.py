"""The emulated FN's marking side (kkt_drivers.emulator.fn_marking) and the in-process driver's flow."""
from __future__ import annotations

from decimal import Decimal

import pytest

from kkt_drivers import marking as mk
from kkt_drivers.emulator.driver import EmulatorDriver
from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.errors import DeviceStateError, DriverConfigError, RejectedError
from kkt_drivers.receipt import Item, Operation, Payment, PaymentSubject, PaymentType, Receipt, TaxSystem, Vat

SHOE = mk.build_gs1("04603988000001", "5Jr7Ypq2Z1X9A", key_id="EE10", crypto="x" * 44)
NO_TAIL = b"0104603988000001215Jr7Ypq2Z1X9B"


def code(n: int) -> bytes:
    return mk.build_gs1("04650194496163", f"S{n:05d}", check_code="dGVz")


@pytest.fixture
def model(tmp_path) -> RegisterModel:
    m = RegisterModel(tmp_path / "reg", fsync=False)
    m.open_shift()
    return m


def test_offline_check_sees_the_crypto_tail(model) -> None:
    with_tail = model.check_marking(SHOE, 1)
    model.decide_marking(True)
    without = model.check_marking(NO_TAIL, 1)
    assert (with_tail["local"], with_tail["reason"], with_tail["type"]) == (0x03, 0, 4)
    assert (without["local"], without["reason"], without["type"]) == (0, 3, 0)


def test_ofd_down_makes_answers_late_and_queues_notifications(model) -> None:
    model.ofd_link(False)
    r = model.check_marking(SHOE, 1)
    assert r["fn_answer"] == 0xFF and r["answer"] is None and r["result"] == 0x03
    model.decide_marking(True)
    model.open_receipt(Operation.SALE)
    model.add_item(Item("Кроссовки", Decimal(1), Decimal(1), Decimal(1), Vat.NONE,
                        payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=SHOE))
    doc = model.close_receipt([Payment(PaymentType.ELECTRONIC, Decimal(1))], TaxSystem.OSN)
    assert doc["2107"] == 1 and model.marking_counters()["unsent"] == 1
    model.ofd_link(True)
    assert model.marking_counters()["unsent"] == 0


def test_a_line_needs_an_accepted_code(model) -> None:
    model.check_marking(SHOE, 1)
    model.decide_marking(False)
    model.open_receipt(Operation.SALE)
    with pytest.raises(RejectedError) as e:
        model.add_item(Item("x", Decimal(1), Decimal(1), Decimal(1), Vat.NONE,
                            payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=SHOE))
    assert e.value.vendor_code == "0xA5"


def test_check_table_holds_128_codes(model) -> None:
    for n in range(128):
        model.check_marking(code(n), 1)
        model.decide_marking(True)
    with pytest.raises(RejectedError) as e:
        model.check_marking(code(128), 1)
    assert e.value.vendor_code == "0xA3"
    model.check_marking(code(5), 1)  # re-checking a code already in the table replaces it


def test_decision_without_check_is_wrong_order(model) -> None:
    with pytest.raises(DeviceStateError) as e:
        model.decide_marking(True)
    assert e.value.vendor_code == "0xA1"


def _sale() -> Receipt:
    it = Item("Кроссовки", Decimal(10), Decimal(1), Decimal(10), Vat.NONE,
              payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=SHOE)
    return Receipt(Operation.SALE, TaxSystem.OSN, (it,), (Payment(PaymentType.ELECTRONIC, Decimal(10)),), tag="e1")


def test_sell_unanswered_is_an_explicit_url_option(tmp_path) -> None:
    with pytest.raises(DriverConfigError, match="marking_unanswered"):
        EmulatorDriver.from_url(f"emulator://{tmp_path}/r?marking_unanswered=yes")
    drv = EmulatorDriver.from_url(f"emulator://{tmp_path}/r?marking_unanswered=sell&marking_late=first:1")
    drv.open_shift()
    doc = drv.register.document(drv.fiscalize(_sale()).fd_number)
    assert doc["items"][0]["marking"]["2106"] == 0x03 and doc["2107"] == 1  # FN-only result, marked «КМ?»
