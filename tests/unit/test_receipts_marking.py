"""The receipt builder with marked goods: codes per unit from the shop, errors by field, splits, refunds."""
from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal

import pytest

from kkt_drivers import marking as mk
from kkt_drivers.receipt import PaymentSubject, PlannedStatus, TaxSystem, Vat
from worker.receipts.build import build_receipts
from worker.receipts.config import ReceiptConfig
from worker.receipts.rules import InvalidPayment
from worker.shop.rows import ShopItem, ShopPayment

CFG = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://shop.example")
PAID = dt.datetime(2026, 11, 20, 12, 0)


def code(n: int) -> bytes:
    return mk.build_gs1("04650194496163", f"S{n:05d}", check_code="dGVz")


def item(line_no: int, qty: int, codes=(), price: str = "10.00", subject=None) -> ShopItem:
    return ShopItem(line_no=line_no, name=f"Товар {line_no}", price=Decimal(price), quantity=Decimal(qty),
                    amount=Decimal(price) * qty, vat="vat22", payment_subject=subject, marking_codes=tuple(codes))


def sale(*items: ShopItem, pid: int = 7) -> ShopPayment:
    return ShopPayment(id=pid, kind="sale", amount=sum((i.amount for i in items), Decimal(0)), paid_at=PAID,
                       customer_email="buyer@example.ru", items=items)


def test_a_line_with_n_codes_becomes_n_units_and_unmarked_lines_stay():
    [planned] = build_receipts(sale(item(1, 2, [code(1), base64.b64encode(code(2)).decode()]), item(2, 3)), CFG)
    lines = planned.receipt.items
    assert [(str(i.quantity), i.marking_code) for i in lines] == [("1.000", code(1)), ("1.000", code(2)), ("3.000", None)]
    assert lines[0].payment_subject is PaymentSubject.MARKED_COMMODITY
    assert planned.receipt.problems() == []


@pytest.mark.parametrize("row, field, why", [
    (item(1, 2, [code(1)]), "payment_items[0].marking_codes", "1 codes for quantity 2"),
    (item(1, 1, [b"(01)04650194496163(21)S00001"]), "payment_items[0].marking_codes[0]", "human-readable"),
    (item(1, 1, subject="33"), "payment_items[0].marking_codes", "needs one marking code per unit"),
    (item(1, 1, [code(1)], subject="service"), "payment_items[0].payment_subject", "must be 33"),
])
def test_bad_codes_are_rejected_by_field(row, field, why):
    with pytest.raises(InvalidPayment) as e:
        build_receipts(sale(row), CFG)
    assert e.value.field == field and why in e.value.message


def test_the_same_code_twice_in_a_payment_is_rejected():
    with pytest.raises(InvalidPayment) as e:
        build_receipts(sale(item(1, 1, [code(1)]), item(2, 1, [code(1)])), CFG)
    assert e.value.field == "payment_items[1].marking_codes[0]" and "payment_items[0].marking_codes[0]" in e.value.message


def test_200_codes_split_into_receipts_of_at_most_128_codes():
    cfg = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://s.example",
                        max_items_per_receipt=500)
    planned = build_receipts(sale(item(1, 200, [code(n) for n in range(200)])), cfg)
    assert [len(p.receipt.marking_codes) for p in planned] == [128, 72]
    assert all(p.receipt.problems() == [] for p in planned)
    assert sum((p.receipt.total for p in planned), Decimal(0)) == Decimal("2000.00")


def test_refund_carries_the_same_codes_with_status_returned():
    original = sale(item(1, 3, [code(1), code(2), code(3)]), item(2, 1))
    refund = ShopPayment(id=8, kind="refund", amount=Decimal("20.00"), paid_at=PAID, refund_of=7,
                         items=(ShopItem(line_no=1, name=None, price=None, quantity=Decimal(2), amount=Decimal("20.00")),))
    [planned] = build_receipts(refund, CFG, original=original, already_refunded={1: Decimal(1)})
    r = planned.receipt
    assert r.marking_codes == [code(2), code(3)]  # the units after the one refunded before
    assert {i.status_for(r.operation) for i in r.items} == {PlannedStatus.PIECE_RETURNED}
    named = ShopPayment(id=9, kind="refund", amount=Decimal("10.00"), paid_at=PAID, refund_of=7,
                        items=(ShopItem(line_no=1, name=None, price=None, quantity=Decimal(1), amount=Decimal("10.00"),
                                        marking_codes=(code(3),)),))
    assert build_receipts(named, CFG, original=original)[0].receipt.marking_codes == [code(3)]
