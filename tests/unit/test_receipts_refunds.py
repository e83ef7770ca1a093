"""worker.receipts.build: splitting, refunds mirroring the original, discounts and the config."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import pytest

from kkt_drivers.receipt import (
    Item,
    Operation,
    PaymentMethod,
    PaymentType,
    Vat,
)
from tests.unit.receipt_rows import CFG, DAY_2025, item, ref_item, refund, rejected, sale
from worker.receipts.build import build_receipts
from worker.receipts.config import make_tag
from worker.receipts.discounts import spread_discount

# ---------------------------------------------------------------- splitting


def test_more_items_than_the_limit_become_balanced_parts_with_own_tags():
    items = [item(n, f"Товар {n}", f"{n}.00") for n in range(1, 251)]
    planned = build_receipts(sale(*items, id=77), CFG)
    assert [p.part for p in planned] == [1, 2, 3]
    assert [len(p.receipt.items) for p in planned] == [100, 100, 50]
    assert [p.receipt.tag for p in planned] == ["S25", "S25.2", "S25.3"]
    for p in planned:
        assert p.receipt.problems() == []
        assert p.receipt.payments[0].amount == p.receipt.total
    assert sum(p.receipt.total for p in planned) == sum(D(n) for n in range(1, 251))


def test_a_small_limit_from_config_is_respected():
    cfg = dataclasses.replace(CFG, max_items_per_receipt=2)
    planned = build_receipts(sale(item(1), item(2), item(3)), cfg)
    assert [len(p.receipt.items) for p in planned] == [2, 1]


def test_a_part_of_only_gifts_borrows_a_paid_line():
    cfg = dataclasses.replace(CFG, max_items_per_receipt=2)
    planned = build_receipts(
        sale(item(1), item(2), item(3, "Подарок", "0.00"), item(4, "Подарок", "0.00")), cfg
    )
    assert all(p.receipt.problems() == [] for p in planned)
    assert sum(p.receipt.total for p in planned) == D("200.00")


def test_too_many_gifts_for_the_paid_lines_are_rejected():
    cfg = dataclasses.replace(CFG, max_items_per_receipt=1)
    assert rejected(sale(item(1), item(2, "Подарок", "0.00")), cfg).field == "payment_items"


# ---------------------------------------------------------------- refunds


def test_a_partial_refund_mirrors_the_sale_lines():
    original = sale(item(1, qty="3"), item(2, "Доставка", "350.00", payment_subject="service"))
    planned = build_receipts(refund(ref_item(1, "2", "200.00")), CFG, original=original)
    r = planned[0].receipt
    assert (planned[0].stage, r.operation, r.tag) == (
        "refund",
        Operation.SALE_REFUND,
        make_tag(2002, "refund", 1),
    )
    assert r.items[0].name == "Чай зелёный" and r.items[0].quantity == D("2") and r.total == D("200.00")
    assert r.payments[0].type is PaymentType.ELECTRONIC and r.payments[0].amount == D("200.00")
    assert r.customer_contact == "ivan@example.com"  # falls back to the sale's contact
    assert r.problems() == []


def test_a_2026_refund_of_a_2025_sale_keeps_20_percent():
    original = sale(item(vat="vat20"), paid_at=DAY_2025)
    r = build_receipts(refund(ref_item()), CFG, original=original)[0].receipt
    assert r.items[0].vat is Vat.VAT20


def test_a_2026_refund_of_a_2025_sale_with_default_rate_keeps_20_percent():
    original = sale(item(vat=None), paid_at=DAY_2025)
    r = build_receipts(refund(ref_item()), CFG, original=original)[0].receipt
    assert r.items[0].vat is Vat.VAT20


def test_a_refund_ignores_the_current_catalogue_rate_in_its_own_row():
    original = sale(item(vat="vat20"), paid_at=DAY_2025)
    row = refund(dataclasses.replace(ref_item(), vat="vat22"))
    assert build_receipts(row, CFG, original=original)[0].receipt.items[0].vat is Vat.VAT20


def test_a_refund_of_a_prepayment_keeps_the_method_and_calculated_rate():
    original = sale(item(vat="vat122", payment_method=1))
    it = build_receipts(refund(ref_item()), CFG, original=original)[0].receipt.items[0]
    assert (it.payment_method, it.vat) == (PaymentMethod.FULL_PREPAYMENT, Vat.VAT122)


def test_a_refund_without_the_original_is_rejected():
    assert rejected(refund(ref_item())).field == "payments.refund_of"


@pytest.mark.parametrize("refund_of", [None, "1001", 999])
def test_a_refund_must_reference_the_given_sale(refund_of):
    assert rejected(refund(ref_item(), refund_of=refund_of), original=sale()).field == "payments.refund_of"


def test_a_refund_of_a_refund_is_rejected():
    other = dataclasses.replace(sale(), kind="refund")
    assert rejected(refund(ref_item()), original=other).field == "payments.refund_of"


def test_an_invalid_original_is_reported_with_the_original_prefix():
    err = rejected(refund(ref_item()), original=sale(item(vat="vat18")))
    assert err.field == "original.payment_items[0].vat"


def test_refund_more_than_sold_on_a_line_is_rejected():
    err = rejected(refund(ref_item(1, "2", "200.00")), original=sale(item()))
    assert err.field == "payment_items[0].quantity" and "sold 1.000" in err.message


def test_refund_more_than_left_after_earlier_refunds_is_rejected():
    original = sale(item(qty="3"))
    build_receipts(refund(ref_item(1, "1")), CFG, original=original, already_refunded={1: D("2")})
    err = rejected(refund(ref_item(1, "1")), original=original, already_refunded={1: D("2.5")})
    assert err.field == "payment_items[0].quantity"


def test_refund_of_an_unknown_line_is_rejected():
    assert rejected(refund(ref_item(7)), original=sale()).field == "payment_items[0].line_no"


def test_refund_with_amount_not_matching_the_sale_price_is_rejected():
    err = rejected(refund(ref_item(1, "1", "90.00")), original=sale())
    assert err.field == "payment_items[0].amount"


def test_refund_with_a_different_price_is_rejected():
    err = rejected(refund(ref_item(1, "1", "90.00", price=D("90.00"))), original=sale())
    assert err.field == "payment_items[0].price"


def test_refund_total_must_equal_its_items():
    err = rejected(refund(ref_item(), amount=D("50.00")), original=sale())
    assert err.field == "payments.amount"


def test_refund_dated_before_the_sale_is_rejected():
    err = rejected(refund(ref_item(), paid_at=DAY_2025), original=sale())
    assert err.field == "payments.paid_at"


def test_refund_with_its_own_contact_uses_it():
    r = build_receipts(refund(ref_item(), phone="8 912 000 11 22"), CFG, original=sale())[0].receipt
    assert r.customer_contact == "+79120001122"


def test_refund_fractional_weight_within_what_is_left():
    original = sale(item(price="199.90", qty="1.235"))
    r = build_receipts(
        refund(ref_item(1, "0.235", "46.98")), CFG, original=original, already_refunded={1: D("1")}
    )[0].receipt
    assert r.total == D("46.98") and r.problems() == []


# ---------------------------------------------------------------- discounts


def line(price, qty, name="x") -> Item:
    return Item(
        name=name,
        price=D(price),
        quantity=D(qty),
        amount=(D(price) * D(qty)).quantize(D("0.01")),
        vat=Vat.VAT22,
    )


def test_spread_discount_proportional_with_remainder_on_the_last_line():
    out = spread_discount([line("100", "1"), line("200", "1"), line("300", "1")], D("60.00"))
    assert [o.amount for o in out] == [D("90.00"), D("180.00"), D("270.00")]


def test_spread_discount_kopeck_remainder_goes_last():
    out = spread_discount([line("1", "1"), line("1", "1"), line("1", "1")], D("0.10"))
    assert [o.amount for o in out] == [D("0.97"), D("0.97"), D("0.96")]


def test_spread_discount_splits_a_line_that_no_longer_divides():
    out = spread_discount([line("100", "3")], D("0.01"))
    assert [(o.quantity, o.price, o.amount) for o in out] == [
        (D("2"), D("99.99"), D("199.98")),
        (D("1"), D("100.01"), D("100.01")),
    ]


def test_spread_discount_keeps_one_line_when_it_divides():
    out = spread_discount([line("100", "3")], D("30.00"))
    assert [(o.quantity, o.price) for o in out] == [(D("3"), D("90.00"))]


def test_spread_discount_on_a_weight_line():
    out = spread_discount([line("199.90", "1.235"), line("50", "1")], D("10.00"))
    assert sum(o.amount for o in out) == D("286.88")
    assert all(o.amount == (o.price * o.quantity).quantize(D("0.01")) for o in out)


def test_spread_discount_never_negative_even_with_a_tiny_last_line():
    out = spread_discount(
        [line("0.01", "1"), line("0.01", "1"), line("0.01", "1"), line("0.00", "1")], D("0.03")
    )
    assert all(o.amount >= 0 and o.price >= 0 for o in out) and sum(o.amount for o in out) == 0


@pytest.mark.parametrize("bad", [D("-1"), D("0.001"), D("1000")])
def test_spread_discount_refuses_impossible_discounts(bad):
    with pytest.raises(ValueError):
        spread_discount([line("100", "1")], bad)


def test_a_row_with_a_discount_column_is_spread_over_its_lines():
    base = sale(item(1, qty="3"), item(2, "Доставка", "50.00"), amount=D("340.00"))
    p = dataclasses.replace(base, discount=D("10.00"))
    planned = build_receipts(p, CFG)
    assert planned[0].receipt.problems() == [] and planned[0].receipt.total == D("340.00")
    assert rejected(dataclasses.replace(p, amount=D("350.00"))).field == "payments.amount"
    assert rejected(dataclasses.replace(p, discount=D("-1"))).field == "payments.discount"


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kw",
    [
        {"settlement_place": ""},
        {"settlement_place": "shop.example"},
        {"company_email": "nope"},
        {"cashier_inn": "123"},
        {"max_items_per_receipt": 0},
        {"default_vat": "vat22"},
        {"vat_aliases": {"x": "vat99"}},
    ],
)
def test_config_errors_are_loud(kw):
    with pytest.raises(ValueError):
        dataclasses.replace(CFG, **kw)
