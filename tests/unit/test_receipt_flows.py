"""Prepayment → settlement, refunds per stage and correction receipts (fz54-receipts.md §3.3, §4.5 B, §5)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest

from kkt_drivers.receipt import Operation, PaymentMethod, PaymentType, TaxSystem, Vat
from worker.errors import ConfigError
from worker.receipts.build import build_receipts
from worker.receipts.config import ReceiptConfig, make_tag
from worker.receipts.corrections import correction_of, reverse_correction_of
from worker.receipts.prepayment import build_settlement
from worker.receipts.rules import InvalidPayment
from worker.settings import Settings
from worker.shop.rows import ShopItem, ShopPayment
from worker.app import receipt_config

PRE = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://shop.example",
                    flow="prepayment")
DAY_2026 = dt.datetime(2026, 11, 21, 12, 30)
DAY_2025 = dt.datetime(2025, 12, 20, 10, 0)


def item(line_no=1, price="100.00", qty="1", vat="vat22", **kw) -> ShopItem:
    amount = (D(price) * D(qty)).quantize(D("0.01"))
    return ShopItem(line_no=line_no, name=f"Товар {line_no}", price=D(price), quantity=D(qty), amount=amount,
                    vat=vat, **kw)


def sale(*items: ShopItem, id=7, paid_at=DAY_2026) -> ShopPayment:
    items = items or (item(),)
    return ShopPayment(id=id, kind="sale", amount=sum((i.amount for i in items), D(0)), paid_at=paid_at,
                       customer_email="ivan@example.com", items=tuple(items))


def refund(*items: ShopItem, id=9, refund_of=7, paid_at=DAY_2026) -> ShopPayment:
    return ShopPayment(id=id, kind="refund", amount=sum((i.amount for i in items), D(0)), paid_at=paid_at,
                       refund_of=refund_of, items=tuple(items))


def lines(receipt) -> list[tuple[PaymentMethod, Vat, D]]:
    return [(i.payment_method, i.vat, i.amount) for i in receipt.items]


@pytest.mark.parametrize("shop_vat,expected", [
    ("vat22", Vat.VAT122), (None, Vat.VAT122), ("vat10", Vat.VAT110), ("vat0", Vat.VAT0), ("none", Vat.NONE),
    ("vat5", Vat.VAT105), ("vat7", Vat.VAT107),
])
def test_prepayment_flow_sale_is_a_full_prepayment_at_the_calculated_rate(shop_vat, expected) -> None:
    """Given the prepayment flow, when a sale is built, then stage "prepayment": 1214 = 1, the calculated
    rate, paid electronically, tag P<id>."""
    # 5 % / 7 % exist only under УСН (class 5: refused under ОСН)
    cfg = dataclasses.replace(PRE, tax_system=TaxSystem.USN_INCOME) if shop_vat in ("vat5", "vat7") else PRE
    [p] = build_receipts(sale(item(vat=shop_vat)), cfg)
    assert (p.stage, p.receipt.tag, p.receipt.operation) == ("prepayment", "P7", Operation.SALE)
    assert lines(p.receipt) == [(PaymentMethod.FULL_PREPAYMENT, expected, D("100.00"))]
    assert [(x.type, x.amount) for x in p.receipt.payments] == [(PaymentType.ELECTRONIC, D("100.00"))]
    assert (p.receipt.items[0].vat.ffd_code, expected) in {(12, Vat.VAT122), (4, Vat.VAT110), (5, Vat.VAT0),
                                                          (6, Vat.NONE), (9, Vat.VAT105), (10, Vat.VAT107)}


def test_single_flow_is_unchanged() -> None:
    """Given the default flow, a sale stays one full-payment receipt at 22 %."""
    [p] = build_receipts(sale(), dataclasses.replace(PRE, flow="single"))
    assert p.stage == "sale" and lines(p.receipt) == [(PaymentMethod.FULL_PAYMENT, Vat.VAT22, D("100.00"))]


def test_settlement_is_a_full_payment_at_the_ordinary_rate_paid_by_the_prepayment() -> None:
    """When the goods are delivered, the settlement repeats the goods with 1214 = 4, 22 % (1199 = 11) and
    one payment "prepaid" (1215) = total, tag F<id>."""
    [s] = build_settlement(sale(item(1), item(2, "50.00", "2")), PRE, delivered_at=DAY_2026)
    assert (s.stage, s.receipt.tag, s.receipt.operation) == ("settlement", "F7", Operation.SALE)
    assert lines(s.receipt) == [(PaymentMethod.FULL_PAYMENT, Vat.VAT22, D("100.00")),
                                (PaymentMethod.FULL_PAYMENT, Vat.VAT22, D("100.00"))]
    assert s.receipt.items[0].vat.ffd_code == 11
    assert [(x.type, x.amount) for x in s.receipt.payments] == [(PaymentType.PREPAID, D("200.00"))]
    assert s.receipt.problems() == []


@pytest.mark.parametrize("delivered,expected", [
    (dt.datetime(2025, 12, 30, 18, 0), Vat.VAT20),
    (dt.datetime(2026, 1, 10, 9, 0), Vat.VAT22),
])
def test_prepaid_in_2025_settled_at_the_rate_of_the_delivery_date(delivered, expected) -> None:
    """§3.3: prepayment in 2025 at 20/120 (1199 = 3); settlement in 2026 at 22 % (11), in 2025 at 20 % (1)."""
    row = sale(item(vat="vat20"), paid_at=DAY_2025)
    [p] = build_receipts(row, PRE)
    assert lines(p.receipt) == [(PaymentMethod.FULL_PREPAYMENT, Vat.VAT120, D("100.00"))]
    [s] = build_settlement(row, PRE, delivered_at=delivered)
    assert lines(s.receipt) == [(PaymentMethod.FULL_PAYMENT, expected, D("100.00"))]


def test_settlement_leaves_out_what_was_refunded_before_delivery() -> None:
    """Refunded quantities (from the ledger) are not offset; a fully refunded payment has nothing to settle."""
    row = sale(item(1, "10.00", "3"), item(2))
    [s] = build_settlement(row, PRE, delivered_at=DAY_2026, already_refunded={1: D("2"), 2: D("0")})
    assert [(i.name, i.quantity, i.amount) for i in s.receipt.items] == [
        ("Товар 1", D("1.000"), D("10.00")), ("Товар 2", D("1.000"), D("100.00"))]
    assert s.receipt.total == D("110.00")
    with pytest.raises(InvalidPayment) as exc:
        build_settlement(row, PRE, delivered_at=DAY_2026, already_refunded={1: D("3"), 2: D("1")})
    assert exc.value.field == "deliveries.payment_id"


def test_settlement_rejects_bad_delivery_data() -> None:
    """A delivery before the payment, of a refund row, or of lines asking for another 1214 names the field."""
    with pytest.raises(InvalidPayment) as exc:
        build_settlement(sale(), PRE, delivered_at=dt.datetime(2026, 1, 1))
    assert exc.value.field == "deliveries.delivered_at"
    with pytest.raises(InvalidPayment) as exc:
        build_settlement(sale(), PRE, delivered_at="yesterday")
    assert exc.value.field == "deliveries.delivered_at"
    with pytest.raises(InvalidPayment) as exc:
        build_settlement(refund(item()), PRE, delivered_at=DAY_2026)
    assert exc.value.field == "deliveries.payment_id"
    with pytest.raises(InvalidPayment) as exc:
        build_receipts(sale(item(vat="vat122", payment_method="full_prepayment")), PRE)
    assert exc.value.field == "payment_items[0].payment_method"


def test_refund_mirrors_the_stage_it_refunds() -> None:
    """Before delivery a refund mirrors the prepayment (1214 = 1, 22/122); after, the settlement (1214 = 4)
    at the rate the settlement used — 22 % for goods prepaid in 2025 at 20/120 and delivered in 2026."""
    row = sale(item(1), item(2))
    [r] = build_receipts(refund(item(2)), PRE, original=row, refund_stage="prepayment")
    assert (r.stage, r.receipt.tag, r.receipt.operation) == ("refund", "R9", Operation.SALE_REFUND)
    assert lines(r.receipt) == [(PaymentMethod.FULL_PREPAYMENT, Vat.VAT122, D("100.00"))]
    assert r.receipt.payments[0].type is PaymentType.ELECTRONIC
    [r] = build_receipts(refund(item(2)), PRE, original=row, refund_stage="settlement")
    assert lines(r.receipt) == [(PaymentMethod.FULL_PAYMENT, Vat.VAT22, D("100.00"))]
    old = sale(item(vat="vat20"), paid_at=DAY_2025)
    [r] = build_receipts(refund(item(vat="vat20")), PRE, original=old, refund_stage="settlement",
                         settled_on=dt.date(2026, 1, 10))
    assert lines(r.receipt) == [(PaymentMethod.FULL_PAYMENT, Vat.VAT22, D("100.00"))]
    [r] = build_receipts(refund(item(vat="vat20"), paid_at=DAY_2026), PRE, original=old, refund_stage="prepayment")
    assert lines(r.receipt) == [(PaymentMethod.FULL_PREPAYMENT, Vat.VAT120, D("100.00"))]


def test_corrections_copy_the_receipt_with_1173_1178_and_our_tag() -> None:
    """A correction keeps the data, gets 1173 = 0 and 1178; the reverse one flips 1054; 1192 is our C-tag."""
    [p] = build_receipts(sale(), dataclasses.replace(PRE, flow="single"))
    tag = make_tag(7, "correction", 1)
    fix = correction_of(p.receipt, tag=tag, corrected_on=dt.date(2026, 11, 21))
    assert (fix.tag, fix.operation, fix.items, fix.payments) == ("C7", Operation.SALE, p.receipt.items,
                                                                 p.receipt.payments)
    assert fix.correction.self_made and fix.correction.corrected_date == dt.date(2026, 11, 21)
    rev = reverse_correction_of(p.receipt, tag=make_tag(7, "correction", 2), corrected_on=dt.date(2026, 11, 21))
    assert (rev.tag, rev.operation, rev.items) == ("C7.2", Operation.SALE_REFUND, p.receipt.items)
    assert rev.correction is not None and rev.problems() == []


def test_flow_setting_is_checked() -> None:
    """receipts.flow accepts single and prepayment; anything else is refused by name."""
    base = {"tax_system": "osn", "default_vat": "vat22", "settlement_place": "https://shop.example"}
    assert receipt_config(Settings(receipts={**base, "flow": "prepayment"})).flow == "prepayment"
    assert receipt_config(Settings(receipts=base)).flow == "single"
    with pytest.raises(ConfigError, match="flow"):
        receipt_config(Settings(receipts={**base, "flow": "twostage"}))
