"""worker.receipts: a shop payment row becomes correct 54-FZ receipts, or InvalidPayment names the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest

from kkt_drivers.receipt import (
    Item,
    MeasureUnit,
    Operation,
    PaymentMethod,
    PaymentSubject,
    PaymentType,
    TaxSystem,
    Vat,
)
from worker.errors import WorkerError
from worker.receipt_rules import DEFAULT_VAT_ALIASES
from worker.receipts import (
    InvalidPayment,
    PlannedReceipt,
    ReceiptConfig,
    build_receipts,
    make_tag,
    mask_contact,
    spread_discount,
)
from worker.shop_rows import ShopItem, ShopPayment

CFG = ReceiptConfig(tax_system=TaxSystem.OSN, default_vat=Vat.VAT22, settlement_place="https://shop.example")
DAY_2026 = dt.datetime(2026, 11, 21, 12, 30)
DAY_2025 = dt.datetime(2025, 12, 31, 23, 59)


def item(line_no=1, name="Чай зелёный", price="100.00", qty="1", amount=None, vat="vat22", **kw) -> ShopItem:
    """A valid item row; amount defaults to price × qty."""
    if amount is None:
        amount = (D(price) * D(qty)).quantize(D("0.01"))
    return ShopItem(
        line_no=line_no,
        name=name,
        price=D(price) if isinstance(price, str) else price,
        quantity=D(qty) if isinstance(qty, str) else qty,
        amount=D(amount) if isinstance(amount, str) else amount,
        vat=vat,
        **kw,
    )


def sale(
    *items: ShopItem, id=1001, amount=None, paid_at=DAY_2026, email="ivan@example.com", phone=None, **kw
) -> ShopPayment:
    """A valid sale row; amount defaults to the items' total."""
    items = items or (item(),)
    if amount is None:
        amount = sum((i.amount for i in items), D(0))
    return ShopPayment(
        id=id,
        kind="sale",
        amount=amount,
        paid_at=paid_at,
        customer_email=email,
        customer_phone=phone,
        items=tuple(items),
        **kw,
    )


def refund(*items: ShopItem, id=2002, refund_of=1001, amount=None, paid_at=DAY_2026, email=None, phone=None):
    """A refund row referencing the sale's lines by line_no."""
    if amount is None:
        amount = sum((i.amount for i in items), D(0))
    return ShopPayment(
        id=id,
        kind="refund",
        amount=amount,
        paid_at=paid_at,
        customer_email=email,
        customer_phone=phone,
        refund_of=refund_of,
        items=tuple(items),
    )


def ref_item(line_no=1, qty="1", amount="100.00", price=None) -> ShopItem:
    return ShopItem(line_no=line_no, name=None, price=price, quantity=D(qty), amount=D(amount))


def rejected(payment: ShopPayment, cfg: ReceiptConfig = CFG, **kw) -> InvalidPayment:
    with pytest.raises(InvalidPayment) as info:
        build_receipts(payment, cfg, **kw)
    return info.value


# ---------------------------------------------------------------- the happy path


def test_given_a_valid_sale_when_built_then_one_balanced_internet_receipt():
    planned = build_receipts(
        sale(item(qty="3"), item(2, "Доставка", "350.00", vat="22%", payment_subject="service")), CFG
    )
    assert len(planned) == 1
    p = planned[0]
    assert isinstance(p, PlannedReceipt) and (p.stage, p.part) == ("sale", 1)
    r = p.receipt
    assert r.problems() == []
    assert r.operation is Operation.SALE and r.tax_system is TaxSystem.OSN
    assert r.tag == make_tag(1001, "sale", 1)
    assert r.total == D("650.00")
    assert [(pm.type, pm.amount) for pm in r.payments] == [(PaymentType.ELECTRONIC, D("650.00"))]
    assert r.internet and r.settlement_place == "https://shop.example"
    assert r.customer_contact == "ivan@example.com"
    assert [i.payment_method for i in r.items] == [PaymentMethod.FULL_PAYMENT] * 2
    assert [i.payment_subject for i in r.items] == [PaymentSubject.COMMODITY, PaymentSubject.SERVICE]
    assert [i.vat for i in r.items] == [Vat.VAT22, Vat.VAT22]


def test_given_weight_goods_when_built_then_fractional_quantity_kept():
    r = build_receipts(sale(item(price="199.90", qty="1.235", measure_unit="kg")), CFG)[0].receipt
    assert r.items[0].quantity == D("1.235") and r.items[0].amount == D("246.88")
    assert r.items[0].measure_unit is MeasureUnit.KILOGRAM and r.problems() == []


def test_given_config_extras_when_built_then_company_email_and_cashier_copied():
    cfg = dataclasses.replace(
        CFG, company_email="shop@example.com", cashier="Робот", cashier_inn="123456789012"
    )
    r = build_receipts(sale(), cfg)[0].receipt
    assert (r.company_email, r.cashier, r.cashier_inn) == ("shop@example.com", "Робот", "123456789012")


def test_given_a_text_kind_with_spaces_and_bytes_name_in_utf8_then_accepted():
    p = dataclasses.replace(sale(item(name="  Кофе  ".encode())), kind=" Sale ")
    assert build_receipts(p, CFG)[0].receipt.items[0].name == "Кофе"


# ---------------------------------------------------------------- tags


@pytest.mark.parametrize(
    "args, tag",
    [
        ((1001, "sale", 1), "SRT"),
        ((1001, "sale", 2), "SRT.2"),
        ((1001, "refund", 1), "RRT"),
        ((0, "sale", 1), "S0"),
        ((35, "prepayment", 1), "PZ"),
        ((36, "settlement", 3), "F10.3"),
    ],
)
def test_make_tag_is_stage_letter_base36_and_part(args, tag):
    assert make_tag(*args) == tag


def test_make_tag_is_unique_per_id_stage_part():
    tags = {
        make_tag(i, s, p)
        for i in range(300)
        for s in ("sale", "refund", "prepayment", "settlement")
        for p in range(1, 40)
    }
    assert len(tags) == 300 * 4 * 39


@pytest.mark.parametrize(
    "args",
    [
        (36**15, "sale", 1),
        (36**13, "sale", 100),
        (-1, "sale", 1),
        (1, "sale", 0),
        (1, "bogus", 1),
        (True, "sale", 1),
    ],
)
def test_make_tag_refuses_what_would_be_too_long_or_wrong(args):
    with pytest.raises(ValueError):
        make_tag(*args)


def test_make_tag_fits_16_chars_for_large_ids():
    assert len(make_tag(2**63 - 1, "sale", 9)) == 16  # 13 base36 digits + ".9"
    assert len(make_tag(2**40, "sale", 9999)) <= 16  # a realistic id leaves room for many parts


# ---------------------------------------------------------------- money, quantity, sums


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("amount", 100.0, "float"),
        ("amount", "abc", "not a decimal"),
        ("amount", None, "missing"),
        ("amount", D("NaN"), "finite"),
        ("amount", D("100.005"), "2 decimal"),
        ("price", D("-1.00"), "negative"),
        ("price", D("42949672.96"), "limit"),
        ("quantity", D("0"), "greater than 0"),
        ("quantity", D("-1"), "greater than 0"),
        ("quantity", D("100000"), "limit"),
        ("quantity", D("1.0005"), "3 decimal"),
        ("quantity", 1.5, "float"),
        ("quantity", True, "not a number"),
    ],
)
def test_item_numbers_are_validated_naming_the_field(field, value, fragment):
    bad = dataclasses.replace(item(), **{field: value})
    err = rejected(sale(bad, amount=D("100.00")))
    assert err.field == f"payment_items[0].{field}"
    assert fragment in err.message


def test_given_amount_not_price_times_qty_then_rejected_exactly_to_the_kopeck():
    err = rejected(sale(item(price="33.33", qty="3", amount="100.00")))
    assert err.field == "payment_items[0].amount" and "99.99" in err.message


def test_given_price_times_fractional_qty_then_half_up_rounding_is_the_rule():
    # 10.01 x 0.5 = 5.005 → 5.01 (half up), not 5.00 (banker's)
    assert build_receipts(sale(item(price="10.01", qty="0.5", amount="5.01")), CFG)[0].receipt.total == D(
        "5.01"
    )
    assert rejected(sale(item(price="10.01", qty="0.5", amount="5.00"))).field == "payment_items[0].amount"


@pytest.mark.parametrize("amount", [D("99.99"), D("100.01")])
def test_given_payment_amount_not_sum_of_items_then_rejected_on_payments_amount(amount):
    err = rejected(sale(item(), amount=amount))
    assert err.field == "payments.amount"


@pytest.mark.parametrize(
    "amount, fragment",
    [(D("0"), "greater than 0"), (D("-5"), "greater than 0"), (5.0, "float"), ("x", "not a decimal")],
)
def test_payment_amount_must_be_a_positive_decimal(amount, fragment):
    err = rejected(sale(item(), amount=amount))
    assert err.field == "payments.amount" and fragment in err.message


def test_a_zero_priced_gift_line_is_allowed():
    r = build_receipts(sale(item(), item(2, "Подарок", "0.00")), CFG)[0].receipt
    assert r.problems() == [] and r.items[1].amount == 0


def test_str_numbers_from_a_driver_are_accepted():
    r = build_receipts(sale(item(price=" 12.50 ", qty="2", amount="25.00"), amount="25.00"), CFG)[0].receipt
    assert r.total == D("25.00")


# ---------------------------------------------------------------- text


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "must be text"),
        ("x" * 129, "129 characters"),
        ("Чай\nзелёный", "U+000A"),
        ("Чай\x00", "U+0000"),
        ("a\u2028b", "U+2028"),
        (b"\xff\xfe", "UTF-8"),
        ("bad \udcff surrogate", "Unicode"),
        (12, "must be text"),
    ],
)
def test_item_name_rules(name, fragment):
    err = rejected(sale(dataclasses.replace(item(), name=name)))
    assert err.field == "payment_items[0].name" and fragment in err.message


def test_name_of_128_characters_after_stripping_is_accepted():
    r = build_receipts(sale(item(name="  " + "я" * 128 + " ")), CFG)[0].receipt
    assert r.items[0].name == "я" * 128


# ---------------------------------------------------------------- contacts


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("8 (912) 345-67-89", "+79123456789"),
        ("+7 912 345 67 89", "+79123456789"),
        ("79123456789", "+79123456789"),
        ("9123456789", "+79123456789"),
        ("+375291234567", "+375291234567"),
    ],
)
def test_phone_is_normalised_to_e164(raw, normalised):
    r = build_receipts(sale(email=None, phone=raw), CFG)[0].receipt
    assert r.customer_contact == normalised


@pytest.mark.parametrize(
    "raw", ["12345", "+7 912 345 67 8", "+7912345678901", "8-912-ABC-67-89", "+", "ext 123"]
)
def test_broken_phone_is_rejected_and_masked(raw):
    err = rejected(sale(email=None, phone=raw))
    assert err.field == "payments.customer_phone"


@pytest.mark.parametrize(
    "raw",
    [
        "ivan",
        "ivan@",
        "@example.com",
        "ivan@example",
        "iv an@example.com",
        "ivan..x@example.com",
        "ivan@exa_mple.com",
        "x" * 60 + "@example.com",
        "иван@пример.рф",
        123,
    ],
)
def test_broken_email_is_rejected_without_leaking_it(raw):
    err = rejected(sale(email=raw, phone="+79123456789"))
    assert err.field == "payments.customer_email"
    if isinstance(raw, str) and len(raw.partition("@")[0]) > 1:  # masking keeps 1 char + the domain
        assert raw not in str(err)


def test_a_contact_is_required_for_an_internet_sale():
    err = rejected(sale(email=None, phone="  "))
    assert err.field == "payments.customer_email" and "1008" in err.message


def test_email_wins_over_phone_when_both_are_given():
    r = build_receipts(sale(email=" ivan@example.com ", phone="+79123456789"), CFG)[0].receipt
    assert r.customer_contact == "ivan@example.com"


@pytest.mark.parametrize(
    "raw, masked",
    [
        ("ivan@example.com", "i***@example.com"),
        ("+79123454567", "+7******4567"),
        ("8 (912) 345-45-67", "8******4567"),
        (None, "None"),
        ("x", "x***"),
        (42, "<int>"),
    ],
)
def test_mask_contact(raw, masked):
    assert mask_contact(raw) == masked


def test_a_rejected_phone_is_masked_in_the_message():
    err = rejected(sale(email=None, phone="+7 912 345 67 8"))
    assert "345" not in str(err)


# ---------------------------------------------------------------- VAT and the 2025 → 2026 transition


@pytest.mark.parametrize(
    "raw, vat",
    [
        ("vat22", Vat.VAT22),
        ("22", Vat.VAT22),
        ("22%", Vat.VAT22),
        ("22 %", Vat.VAT22),
        (22, Vat.VAT22),
        (D("22.00"), Vat.VAT22),
        ("VAT22", Vat.VAT22),
        ("10", Vat.VAT10),
        ("vat10", Vat.VAT10),
        ("0", Vat.VAT0),
        (0, Vat.VAT0),
        ("vat0", Vat.VAT0),
        ("none", Vat.NONE),
        ("Без НДС", Vat.NONE),
        ("vat5", Vat.VAT5),
        ("7%", Vat.VAT7),
    ],
)
def test_vat_aliases_for_a_2026_sale(raw, vat):
    assert build_receipts(sale(item(vat=raw)), CFG)[0].receipt.items[0].vat is vat


@pytest.mark.parametrize("raw", ["vat18", "18%", "", "22.5", "11", 2.2, b"\xff"])
def test_unknown_vat_is_rejected_naming_rate_and_date(raw):
    err = rejected(sale(item(), item(2, vat=raw), item(3), item(4, vat=raw)))
    assert err.field == "payment_items[1].vat"


def test_unknown_vat_message_is_exactly_the_documented_form():
    err = rejected(sale(item(), item(2), item(3), item(4, vat="vat18")))
    assert str(err) == "payment_items[3].vat: 'vat18' is not a valid rate for a sale on 2026-11-21"


@pytest.mark.parametrize("raw", ["vat20", "20%", "20", "vat120"])
def test_20_percent_is_refused_for_a_sale_on_2026_01_01(raw):
    p = sale(
        item(vat=raw, payment_method=1 if raw == "vat120" else None), paid_at=dt.datetime(2026, 1, 1, 0, 0)
    )
    err = rejected(p)
    assert err.field == "payment_items[0].vat" and "2026-01-01" in err.message


@pytest.mark.parametrize("raw", ["vat22", "22%", "vat122"])
def test_22_percent_is_refused_for_a_sale_on_2025_12_31(raw):
    p = sale(item(vat=raw, payment_method=1 if raw == "vat122" else None), paid_at=DAY_2025)
    err = rejected(p)
    assert err.field == "payment_items[0].vat" and "2025-12-31" in err.message


def test_20_percent_is_fine_for_a_sale_on_2025_12_31():
    assert build_receipts(sale(item(vat="vat20"), paid_at=DAY_2025), CFG)[0].receipt.items[0].vat is Vat.VAT20


def test_an_aware_timestamp_is_dated_in_moscow_time():
    # 21:30 UTC on 31 Dec 2025 is 00:30 MSK on 1 Jan 2026: 22 % applies
    utc = dt.datetime(2025, 12, 31, 21, 30, tzinfo=dt.timezone.utc)
    assert build_receipts(sale(item(vat="vat22"), paid_at=utc), CFG)[0].receipt.items[0].vat is Vat.VAT22


def test_a_line_without_vat_takes_the_default_rate_of_its_date():
    assert build_receipts(sale(item(vat=None)), CFG)[0].receipt.items[0].vat is Vat.VAT22
    assert build_receipts(sale(item(vat=None), paid_at=DAY_2025), CFG)[0].receipt.items[0].vat is Vat.VAT20


@pytest.mark.parametrize(
    "method, day, vat",
    [
        (1, DAY_2026, Vat.VAT122),
        (3, DAY_2025, Vat.VAT120),
        (4, DAY_2025, Vat.VAT20),
        (7, DAY_2026, Vat.VAT22),
    ],
)
def test_a_line_without_vat_takes_the_twin_of_the_default_that_fits_its_method(method, day, vat):
    r = build_receipts(sale(item(vat=None, payment_method=method), paid_at=day), CFG)[0].receipt
    assert r.items[0].vat is vat


@pytest.mark.parametrize("method, raw", [(1, "vat22"), (2, "22%"), (3, "vat10"), ("full_prepayment", "vat5")])
def test_ordinary_rate_is_refused_with_a_prepayment_method(method, raw):
    err = rejected(sale(item(vat=raw, payment_method=method)))
    assert err.field == "payment_items[0].vat" and "calculated" in err.message


@pytest.mark.parametrize("method", [4, 5, 6, 7, "full_payment"])
def test_calculated_rate_is_refused_with_a_full_payment_method(method):
    err = rejected(sale(item(vat="22/122", payment_method=method)))
    assert err.field == "payment_items[0].vat" and "ordinary" in err.message


@pytest.mark.parametrize("method, raw", [(1, "vat122"), (2, "22/122"), (3, "none"), (1, "vat0")])
def test_calculated_or_zero_rates_are_fine_with_prepayment(method, raw):
    r = build_receipts(sale(item(vat=raw, payment_method=method)), CFG)[0].receipt
    assert r.problems() == [] and int(r.items[0].payment_method) == method


@pytest.mark.parametrize(
    "field, value",
    [
        ("payment_method", 8),
        ("payment_method", "later"),
        ("payment_subject", 99),
        ("payment_subject", "thing"),
        ("measure_unit", "furlong"),
        ("payment_method", 4.0),
    ],
)
def test_unknown_method_subject_unit_are_rejected(field, value):
    err = rejected(sale(dataclasses.replace(item(), **{field: value})))
    assert err.field == f"payment_items[0].{field}"


def test_custom_vat_aliases_extend_the_defaults():
    cfg = dataclasses.replace(CFG, vat_aliases={**DEFAULT_VAT_ALIASES, "НДС 22%": "vat22"})
    assert build_receipts(sale(item(vat="ндс 22%")), cfg)[0].receipt.items[0].vat is Vat.VAT22


# ---------------------------------------------------------------- row shape


@pytest.mark.parametrize("kind", ["SALE?", None, "refund_all", 1])
def test_kind_must_be_sale_or_refund(kind):
    assert rejected(dataclasses.replace(sale(), kind=kind)).field == "payments.kind"


@pytest.mark.parametrize("paid_at", [None, "2026-11-21 12:00", dt.date(2026, 11, 21)])
def test_paid_at_must_be_a_datetime(paid_at):
    assert rejected(sale(paid_at=paid_at)).field == "payments.paid_at"


def test_items_are_required():
    assert (
        rejected(
            sale(item(), amount=D("100.00")).__class__(
                id=1, kind="sale", amount=D(1), paid_at=DAY_2026, customer_email="a@b.ru"
            )
        ).field
        == "payment_items"
    )


@pytest.mark.parametrize("line_no", [None, 0, -1, "x", 1.0])
def test_line_no_must_be_a_positive_integer(line_no):
    assert rejected(sale(item(line_no=line_no))).field == "payment_items[0].line_no"


def test_duplicate_line_no_is_rejected():
    assert rejected(sale(item(1), item(1))).field == "payment_items[1].line_no"


def test_the_first_problem_is_reported():
    err = rejected(sale(item(name=""), item(2, vat="vat18"), amount=D("1")))
    assert err.field == "payment_items[0].name"


def test_invalid_payment_is_a_worker_error_with_field_and_message():
    err = InvalidPayment("payments.amount", "bad")
    assert isinstance(err, WorkerError) and str(err) == "payments.amount: bad"


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
