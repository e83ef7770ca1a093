"""Receipt model rules for marked lines, and the JSON round trip of the marking fields."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from kkt_drivers import marking as mk, receipt_json
from kkt_drivers.receipt import (
    IndustryRequisite, Item, MeasureUnit, Operation, Payment, PaymentSubject, PaymentType, PlannedStatus,
    Receipt, TaxSystem, Vat,
)

MILK = b"0104650194496163215'oQ5YJ\x1d93dGVz"
MILK2 = b"0104650194496163215'oQ5YK\x1d93dGVz"
PERMIT = IndustryRequisite("030", "21.11.2023", "1944", "UUID=2f1c0e1a-0000-4000-8000-000000000001&Time=1732000000000")


def marked(code: bytes = MILK, **kw) -> Item:
    base = dict(name="Молоко", price=Decimal("99.90"), quantity=Decimal("1"), amount=Decimal("99.90"),
                vat=Vat.VAT10, payment_subject=PaymentSubject.MARKED_COMMODITY, marking_code=code)
    return Item(**{**base, **kw})


def rec(*items: Item, operation: Operation = Operation.SALE) -> Receipt:
    total = sum((i.amount for i in items), Decimal(0))
    return Receipt(operation, TaxSystem.OSN, items, (Payment(PaymentType.ELECTRONIC, total),), tag="p1")


def test_marked_and_unmarked_lines_are_consistent():
    r = rec(marked(), marked(MILK2), Item("Пакет", Decimal("5"), Decimal("2"), Decimal("10"), Vat.VAT22))
    assert r.problems() == []
    assert r.marking_codes == [MILK, MILK2]
    assert r.items[0].status_for(Operation.SALE) is PlannedStatus.PIECE_SOLD
    assert r.items[0].status_for(Operation.SALE_REFUND) is PlannedStatus.PIECE_RETURNED


@pytest.mark.parametrize("item, expected", [
    (Item("x", Decimal(1), Decimal(1), Decimal(1), Vat.NONE, payment_subject=PaymentSubject.MARKED_COMMODITY),
     "items[0].marking_code: payment subject 33 needs a marking code"),
    (Item("x", Decimal(1), Decimal(1), Decimal(1), Vat.NONE, marking_code=MILK),
     "items[0].payment_subject: a line with a marking code must be 33 or 31"),
    (marked(quantity=Decimal(2), amount=Decimal("199.80")), "items[0].quantity: one marking code is one unit"),
    (marked(b"(01)04650194496163(21)5'oQ5YJ"), "items[0].marking_code: human-readable"),
    (marked(marking_mode=1), "items[0].marking_mode: 2102 must be 0"),
    (marked(planned_status=PlannedStatus.PIECE_RETURNED), "items[0].planned_status: 2003 = 3"),
    (marked(quantity=Decimal("0.5"), amount=Decimal("49.95"), fraction=(1, 3)), "items[0].quantity: 0.500 != fraction 1/3"),
])
def test_each_marking_rule_names_its_field(item, expected):
    problems = rec(item).problems()
    assert any(p.startswith(expected) for p in problems), problems


def test_fraction_of_a_pack_is_measured_status_2():
    it = marked(quantity=Decimal("0.091"), amount=Decimal("9.09"), fraction=(2, 22))
    assert rec(it).problems() == []
    assert it.status_for(Operation.SALE) is PlannedStatus.MEASURED_SOLD
    assert it.status_for(Operation.SALE_REFUND) is PlannedStatus.MEASURED_RETURNED


def test_measured_goods_with_a_code_may_have_any_quantity():
    it = marked(quantity=Decimal("0.450"), amount=Decimal("44.96"), measure_unit=MeasureUnit.KILOGRAM)
    assert rec(it).problems() == []
    assert it.status_for(Operation.SALE) is PlannedStatus.MEASURED_SOLD


def test_duplicate_code_in_one_receipt_is_refused():
    assert "items[1].marking_code: the same code as items[0]" in rec(marked(), marked()).problems()


def test_at_most_128_codes_per_receipt():
    items = [marked(mk.build_gs1("04650194496163", f"S{n:05d}", check_code="dGVz")) for n in range(129)]
    assert any("129 marking codes, at most 128" in p for p in rec(*items).problems())
    assert rec(*items[:128]).problems() == []


def test_industry_requisite_checked():
    bad = IndustryRequisite("30", "2023-11-21", "", "")
    problems = rec(marked(industry=(bad,))).problems()
    assert {p.split(":")[0] for p in problems} == {
        "items[0].industry[0].foiv", "items[0].industry[0].doc_date", "items[0].industry[0].doc_number",
        "items[0].industry[0].value"}


def test_json_round_trip_keeps_marking_fields_and_unmarked_json_unchanged():
    plain = Item("Пакет", Decimal("5"), Decimal("1"), Decimal("5"), Vat.VAT22)
    r = rec(marked(industry=(PERMIT,), marking_result=0x0F),
            marked(MILK2, quantity=Decimal("0.5"), amount=Decimal("49.95"), fraction=(1, 2),
                   planned_status=PlannedStatus.MEASURED_SOLD), plain)
    assert receipt_json.loads(receipt_json.dumps(r)) == r
    assert "marking" not in receipt_json.dumps(rec(plain))
    assert receipt_json.loads(receipt_json.dumps(replace(r, operation=Operation.SALE_REFUND))).items[0].marking_code == MILK
