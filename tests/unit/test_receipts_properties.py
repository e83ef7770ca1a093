"""Properties of worker.receipts.build: valid orders give consistent receipts; garbage gives only InvalidPayment."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, assume, event, given, reject, settings
from hypothesis import strategies as st

from kkt_drivers.receipt import Item, TaxSystem, Vat
from worker.receipts.build import build_receipts
from worker.receipts.config import ReceiptConfig
from worker.receipts.discounts import spread_discount
from worker.receipts.issued import Refunded, portion_amount
from worker.receipts.rules import InvalidPayment
from worker.shop.rows import ShopItem, ShopPayment

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KOP = Decimal("0.01")


#: the order-level discount is a ShopPayment column (mapped with source.mapping.payment_discount)
DiscountedPayment = ShopPayment


def _cfg(max_items: int) -> ReceiptConfig:
    return ReceiptConfig(
        tax_system=TaxSystem.OSN,
        default_vat=Vat.VAT22,
        settlement_place="https://shop.example",
        max_items_per_receipt=max_items,
    )


def _round(x: Decimal) -> Decimal:
    return x.quantize(KOP, rounding=ROUND_HALF_UP)


quantities = st.one_of(
    st.integers(1, 50).map(Decimal),
    st.integers(1, 99_999).map(lambda n: Decimal(n) / 1000),  # weights 0.001 .. 99.999
    st.just(Decimal("99999.999")),
)
dates = st.one_of(
    st.datetimes(dt.datetime(2025, 1, 1), dt.datetime(2025, 12, 31, 23, 59, 59)),
    st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2027, 12, 31)),
)


@st.composite
def item_rows(draw, n: int, day: dt.datetime) -> ShopItem:
    qty = draw(quantities)
    # keep price × qty under the 42 949 672.95 register limit
    max_kop = int(Decimal("4294967295") / qty)
    price = Decimal(draw(st.integers(0, min(max_kop, 10**9)))) / 100
    old = day.year < 2026
    method, vat = draw(
        st.sampled_from(
            [
                (None, "vat20" if old else "vat22"),
                (4, "20%" if old else "22%"),
                (None, None),
                (None, "vat10"),
                (None, "0"),
                (None, "none"),
                ("full_payment", "vat10"),
                (1, "20/120" if old else "22/122"),
                (3, "vat110"),
                (2, "none"),
            ]
        )
    )
    name = draw(
        st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=128)
    )
    assume(name.strip())
    return ShopItem(
        line_no=n,
        name=name,
        price=price,
        quantity=qty,
        amount=_round(price * qty),
        vat=vat,
        payment_method=method,
        measure_unit=draw(st.sampled_from([None, "kg", 0, "шт"])),
    )


@st.composite
def valid_sales(draw, with_discount: bool = True) -> ShopPayment:
    day = draw(dates)
    n = draw(st.integers(1, 14))
    items = tuple(draw(item_rows(i + 1, day)) for i in range(n))
    total = sum((i.amount for i in items), Decimal(0))
    assume(total > 0)
    email, phone = draw(
        st.sampled_from(
            [
                ("ivan@example.com", None),
                (None, "8 (912) 345-67-89"),
                ("a.b+c@mail.example.ru", "+79123456789"),
            ]
        )
    )
    kw = dict(
        id=draw(st.integers(0, 2**40)),
        kind="sale",
        paid_at=day,
        customer_email=email,
        customer_phone=phone,
        items=items,
    )
    if with_discount and draw(st.booleans()):
        discount = Decimal(draw(st.integers(0, int(total * 100) - 1))) / 100
        return DiscountedPayment(amount=total - discount, discount=discount, **kw)
    return ShopPayment(amount=total, **kw)


def _build(payment: ShopPayment, max_items: int, **kw):
    try:
        return build_receipts(payment, _cfg(max_items), **kw)
    except InvalidPayment as exc:
        # the one legitimate refusal of a valid-looking order: too few paid lines to give every part
        # a positive total (a large discount can bring most lines to 0)
        if exc.field == "payment_items" and "zero-priced" in exc.message:
            reject()
        raise


@FAST
@given(payment=valid_sales(), max_items=st.integers(1, 100))
def test_valid_orders_give_consistent_receipts_summing_to_what_was_paid(payment, max_items):
    planned = _build(payment, max_items)
    assert [p.part for p in planned] == list(range(1, len(planned) + 1))
    assert len({p.receipt.tag for p in planned}) == len(planned)
    for p in planned:
        assert p.receipt.problems() == []
        assert len(p.receipt.items) <= max_items
        assert p.receipt.payments[0].amount == p.receipt.total
    assert sum(p.receipt.total for p in planned) == payment.amount
    event(f"parts={len(planned)}")


@FAST
@given(original=valid_sales(with_discount=False), data=st.data())
def test_valid_refunds_mirror_the_sale_and_sum_to_the_refund(original, data):
    chosen = data.draw(st.lists(st.sampled_from(original.items), min_size=1, unique_by=lambda i: i.line_no))
    rows, already = [], {}
    for it in chosen:
        step = Decimal("0.001") if it.quantity % 1 else Decimal(1)
        units = int(it.quantity / step)
        done = data.draw(st.integers(0, units - 1))
        qty = data.draw(st.integers(1, units - done)) * step
        already[it.line_no] = done * step
        before = Refunded(done * step, portion_amount(it.quantity, it.amount, Refunded(), done * step))
        # the cumulative rule (class 2): the last part of a line is what is left of it
        rows.append(ShopItem(line_no=it.line_no, name=None, price=None, quantity=qty,
                             amount=portion_amount(it.quantity, it.amount, before, qty)))
    amount = sum((r.amount for r in rows), Decimal(0))
    assume(amount > 0)
    refund = ShopPayment(
        id=original.id + 1,
        kind="refund",
        amount=amount,
        paid_at=original.paid_at + dt.timedelta(days=400),
        refund_of=original.id,
        items=tuple(rows),
    )
    planned = _build(refund, 100, original=original, already_refunded=already)
    by_no = {i.line_no: i for i in original.items}
    refunded = [it for p in planned for it in p.receipt.items]
    for p in planned:
        assert p.receipt.problems() == []
    assert sum(p.receipt.total for p in planned) == amount
    # the 2025 rate survives a 2026 refund: rates are copied, never re-derived
    sold = [i for p in build_receipts(original, _cfg(100)) for i in p.receipt.items]  # line_no n is sold[n-1]
    lines = [n for p in planned for n in p.lines]
    assert sorted(set(lines)) == sorted(r.line_no for r in rows) and all(r.line_no in by_no for r in rows)
    for no, it in zip(lines, refunded):
        o = sold[no - 1]
        assert (it.name, it.vat, it.payment_method) == (o.name, o.vat, o.payment_method)


@FAST
@given(lines=st.lists(st.tuples(st.integers(0, 10**7), quantities), min_size=1, max_size=12), data=st.data())
def test_spread_discount_is_exact_and_never_negative(lines, data):
    items = [
        Item(name="x", price=Decimal(k) / 100, quantity=q, amount=_round(Decimal(k) / 100 * q), vat=Vat.VAT22)
        for k, q in lines
    ]
    assume(all(i.amount <= Decimal("42949672.95") for i in items))
    total = sum((i.amount for i in items), Decimal(0))
    discount = Decimal(data.draw(st.integers(0, int(total * 100)))) / 100
    out = spread_discount(items, discount)
    assert sum((o.amount for o in out), Decimal(0)) == total - discount
    for o in out:
        assert o.amount >= 0 and o.price >= 0 and o.quantity > 0
        assert _round(o.price * o.quantity) == o.amount
    assert sum((o.quantity for o in out), Decimal(0)) == sum((i.quantity for i in items), Decimal(0))


# ---------------------------------------------------------------- garbage

garbage = st.one_of(
    st.none(),
    st.floats(allow_nan=True),
    st.integers(-(10**30), 10**30),
    st.booleans(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.just(Decimal("1E+999999")),
    st.just(Decimal("-0")),
    st.text(max_size=300),
    st.binary(max_size=40),
    st.just(b"\xff\xfe\xfd"),
    st.just("x" * 129),
    st.datetimes(),
    st.dates(),
    st.lists(st.integers(), max_size=3),
    st.just(10**5000),
    st.sampled_from(
        [
            "vat18",
            "22.5",
            "",
            " ",
            "sale",
            "refund",
            "1e3",
            "NaN",
            "-1",
            "0",
            "100000",
            "8 (912) 345-67-8",
            "ivan@",
            "+7",
            "\x00",
            "ok\ud800",
        ]
    ),
)
PAYMENT_FIELDS = ["kind", "amount", "paid_at", "customer_email", "customer_phone", "refund_of", "items", "id"]
ITEM_FIELDS = [
    "line_no",
    "name",
    "price",
    "quantity",
    "amount",
    "vat",
    "payment_method",
    "payment_subject",
    "measure_unit",
]


@st.composite
def garbage_rows(draw) -> ShopPayment:
    p = draw(valid_sales())
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            p = dataclasses.replace(p, **{draw(st.sampled_from(PAYMENT_FIELDS)): draw(garbage)})
        elif isinstance(p.items, tuple) and p.items:
            k = draw(st.integers(0, len(p.items) - 1))
            bad = dataclasses.replace(p.items[k], **{draw(st.sampled_from(ITEM_FIELDS)): draw(garbage)})
            p = dataclasses.replace(p, items=p.items[:k] + (bad,) + p.items[k + 1 :])
    return p


@FAST
@given(payment=garbage_rows(), original=st.one_of(st.none(), valid_sales()), max_items=st.integers(1, 5))
def test_garbage_raises_only_invalid_payment_naming_a_field(payment, original, max_items):
    try:
        planned = build_receipts(payment, _cfg(max_items), original=original)
    except InvalidPayment as exc:
        assert isinstance(exc.field, str) and exc.field
        assert isinstance(exc.message, str) and exc.message
        assert str(exc) == f"{exc.field}: {exc.message}"
        event(exc.field.split("[")[0].split(".")[-1])
    else:
        # a mutation can be harmless (e.g. a valid alias); then the output must still be consistent
        for p in planned:
            assert p.receipt.problems() == []


@FAST
@given(day=dates, vat=st.sampled_from(["vat20", "vat22", "20%", "22%"]))
def test_vat_20_and_22_never_overlap(day, vat):
    p = ShopPayment(
        id=1,
        kind="sale",
        amount=Decimal("10.00"),
        paid_at=day,
        customer_email="a@b.ru",
        items=(ShopItem(1, "x", Decimal("10.00"), Decimal(1), Decimal("10.00"), vat),),
    )
    ok = (day.year < 2026) == ("20" in vat)
    try:
        build_receipts(p, _cfg(100))
        assert ok
    except InvalidPayment as exc:
        assert not ok and exc.field == "payment_items[0].vat"
