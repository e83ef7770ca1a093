"""worker.receipts.build: a shop payment row becomes correct 54-FZ receipts, or InvalidPayment names the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest

from kkt_drivers.receipt import (
    MeasureUnit,
    Operation,
    PaymentMethod,
    PaymentSubject,
    PaymentType,
    TaxSystem,
    Vat,
)
from tests.unit.receipt_rows import CFG, DAY_2025, DAY_2026, item, rejected, sale
from worker.errors import WorkerError
from worker.receipts.build import build_receipts
from worker.receipts.config import PlannedReceipt, make_tag
from worker.receipts.rules import DEFAULT_VAT_ALIASES, InvalidPayment, mask_contact

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
        ("amount", None, "empty (NULL)"),
        ("amount", D("NaN"), "finite"),
        ("amount", D("100.005"), "2 decimal"),
        ("price", D("-1.00"), "negative"),
        ("price", D("42949672.96"), "limit"),
        ("quantity", D("0"), "greater than 0"),
        ("quantity", D("-1"), "greater than 0"),
        ("quantity", D("100000"), "limit"),
        ("quantity", D("1.0005"), "3 decimal"),
        ("quantity", 1.5, "float"),
        ("quantity", True, "expected a decimal number"),
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
    err = rejected(sale(email=raw, phone=None))
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
        (42, "<a whole number>"),
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
    usn = dataclasses.replace(CFG, tax_system=TaxSystem.USN_INCOME)   # every rate is possible under УСН
    assert build_receipts(sale(item(vat=raw)), usn)[0].receipt.items[0].vat is vat


@pytest.mark.parametrize("raw", ["vat18", "18%", "", "22.5", "11", 2.2, b"\xff"])
def test_unknown_vat_is_rejected_naming_rate_and_date(raw):
    err = rejected(sale(item(), item(2, vat=raw), item(3), item(4, vat=raw)))
    assert err.field == "payment_items[1].vat"


def test_unknown_vat_message_is_exactly_the_documented_form():
    err = rejected(sale(item(), item(2), item(3), item(4, vat="vat18")))
    assert str(err) == "payment_items[3].vat: 'vat18' is an unknown VAT rate code"


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
