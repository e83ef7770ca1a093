"""Issue 12, class by class: receipts an inspector and an accountant would pass.

Pure builder tests, plus planner tests on a scratch SQLite ledger (fast, no server) where the rule is
about what the ledger stored: refunds mirror the receipts as issued, cumulative refunds, sales before
go-live. Class numbers refer to the issue.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_drivers.receipt import PaymentMethod, PaymentSubject, PaymentType, TaxSystem, Vat
from tests.unit.receipt_rows import CFG, DAY_2026, item, ref_item, refund, rejected, sale
from worker.ingest.planner import DeliveryPlanner, Planner
from worker.ledger import migrate
from worker.ledger.store import IngestEntry, Ledger
from worker.receipts.assemble import is_late
from worker.receipts.build import build_receipts
from worker.receipts.config import make_tag
from worker.receipts.issued import Refunded, portion_amount
from worker.receipts.prepayment import build_settlement
from worker.receipts.rules import SHOP_VAT_CODES, InvalidPayment, alias_key, parse_email, parse_paid_at
from worker.shop.rows import ShopItem, ShopPayment
from worker.shop.source import ShopDelivery, SourceMapping, assemble

REPO = Path(__file__).resolve().parents[2]
USN = dataclasses.replace(CFG, tax_system=TaxSystem.USN_INCOME)
PRE = dataclasses.replace(CFG, flow="prepayment")


def payments(receipt) -> list[tuple[PaymentType, D]]:
    return [(p.type, p.amount) for p in receipt.payments]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(led.engine)
    return led


def ingest(led: Ledger, planner: Planner, *rows: ShopPayment) -> dict[str, tuple]:
    """Plan and store rows one by one, as separate polls; returns {tag: (state, error, receipt)}."""
    for row in rows:
        led.add_payments([IngestEntry(row, planner.plan(row))])
    return {r.tag: (r.state.value, r.last_error, r.receipt() if r.body else None) for r in led.list_receipts()}


# ---------------------------------------------------------------- 1. line identity


@pytest.mark.parametrize("raw", [1, "1", " 1 ", D("1"), D("1.000"), b"1"])
def test_class1_line_no_is_one_value_whatever_the_column_type(raw):
    assert ShopItem(line_no=raw, name="x", price=D(1), quantity=D(1), amount=D(1)).line_no == 1


def test_class1_a_line_stored_as_text_cannot_be_refunded_twice(ledger):
    """Given a shop whose line_no is text, when line '1' is refunded, then a second refund of line 1
    is refused: the refunded quantities are kept under one key."""
    planner = Planner(ledger, CFG)
    rows = ingest(ledger, planner, sale(item(line_no="1"), id=1),
                  refund(ref_item(line_no="1"), id=2, refund_of=1),
                  refund(ref_item(line_no=1), id=3, refund_of=1))
    assert rows["R2"][0] == "queued"
    state, error, _ = rows["R3"]
    assert state == "rejected" and error.startswith("payment_items[0].quantity: refunding 1.000 of line 1 exceeds")
    assert error.endswith("Next: fix the row in the shop, then run `kkt-worker resend --id 3`")


# ---------------------------------------------------------------- 2. cumulative amounts


def test_class2_three_thirds_of_a_weight_line_add_up_to_the_line():
    whole_q, whole_a = D("0.999"), D("99.89")
    parts, before = [], Refunded()
    for _ in range(3):
        a = portion_amount(whole_q, whole_a, before, D("0.333"))
        parts.append(a)
        before = Refunded(before.quantity + D("0.333"), before.amount + a)
    assert parts == [D("33.30"), D("33.29"), D("33.30")] and sum(parts) == whole_a


def test_class2_the_second_half_of_a_10_01_line_is_what_is_left():
    original = sale(item(price="10.01", qty="1"))
    first = refund(ref_item(qty="0.5", amount="5.01"))
    build_receipts(first, CFG, original=original)
    [r] = build_receipts(refund(ref_item(qty="0.5", amount="5.00"), id=2003), CFG, original=original,
                         already_refunded={1: Refunded(D("0.5"), D("5.01"))})
    assert r.receipt.total == D("5.00") and r.receipt.problems() == []
    err = rejected(refund(ref_item(qty="0.5", amount="5.01"), id=2003), original=original,
                   already_refunded={1: Refunded(D("0.5"), D("5.01"))})
    assert err.field == "payment_items[0].amount" and "what is left" in err.message


def test_class2_a_settlement_offsets_only_what_is_left_of_the_prepayment():
    row = sale(item(price="10.01", qty="1"))
    [s] = build_settlement(row, PRE, delivered_at=DAY_2026, already_refunded={1: Refunded(D("0.5"), D("5.01"))})
    assert s.receipt.total == D("5.00") and payments(s.receipt) == [(PaymentType.PREPAID, D("5.00"))]
    assert s.receipt.problems() == []


@settings(max_examples=150, deadline=None)
@given(price=st.integers(1, 10_000_00), qty_units=st.integers(1, 5000), data=st.data())
def test_class2_refunds_of_a_line_never_exceed_it_whatever_the_sequence(price, qty_units, data):
    """Property: for any line and any sequence of partial refunds whose amounts the shop rounds its own
    way (±1 kopeck of the fair share), every accepted refund keeps the cumulative amount ≤ the line,
    and refunding the whole quantity gives exactly the line's amount."""
    qty = D(qty_units) / 1000
    line = item(price=str(D(price) / 100), qty=str(qty))
    original = sale(line)
    before, n = Refunded(), 0
    while before.quantity < line.quantity and n < 6:
        left_units = int((line.quantity - before.quantity) * 1000)
        step = D(data.draw(st.integers(1, left_units))) / 1000 if n < 5 else line.quantity - before.quantity
        fair = portion_amount(line.quantity, line.amount, before, step)
        shop = max(fair + data.draw(st.sampled_from([D("-0.01"), D(0), D("0.01")])), D(0))
        row = refund(ref_item(qty=str(step), amount=str(shop)), id=3000 + n, amount=shop)
        try:
            planned = build_receipts(row, CFG, original=original, already_refunded={1: before})
        except InvalidPayment:
            shop = fair   # the shop fixes the row as the message says
            row = refund(ref_item(qty=str(step), amount=str(shop)), id=3000 + n, amount=shop)
            planned = build_receipts(row, CFG, original=original, already_refunded={1: before}) if shop else []
        got = sum((p.receipt.total for p in planned), D(0))
        assert all(p.receipt.problems() == [] for p in planned)
        before = Refunded(before.quantity + step, before.amount + got)
        assert before.amount <= line.amount
        n += 1
    if before.quantity == line.quantity:
        assert before.amount == line.amount


# ---------------------------------------------------------------- 3. as issued


def test_class3_a_refund_after_a_settings_change_mirrors_the_issued_receipt(ledger):
    """Given a sale issued under ОСН with its line's VAT from the default (22 %), when the shop switches
    to УСН with default 5 %, then its refund is built from the stored receipt: 22 %, 1055 = ОСН."""
    row = sale(item(vat=None), id=1)
    ingest(ledger, Planner(ledger, CFG), row)
    changed = dataclasses.replace(CFG, tax_system=TaxSystem.USN_INCOME, default_vat=Vat.VAT5)
    rows = ingest(ledger, Planner(ledger, changed), refund(ref_item(), id=2, refund_of=1))
    r = rows["R2"][2]
    assert [(i.vat, i.payment_method) for i in r.items] == [(Vat.VAT22, PaymentMethod.FULL_PAYMENT)]
    assert r.tax_system is TaxSystem.OSN


def test_class3_a_receipt_stored_before_line_numbers_is_still_mirrored_as_issued(ledger):
    """Given a sale receipt stored without line numbers (ledger rows from before migration 0003), when
    the settings change and line 2 is refunded, then the lines are matched by rebuilding the row's line
    order and the stored requisites (22 %) are used."""
    row = sale(item(1, vat=None), item(2, name="Кофе", vat=None), id=1)
    planned = [dataclasses.replace(r, lines=None) for r in Planner(ledger, CFG).plan(row)]
    ledger.add_payments([IngestEntry(row, tuple(planned))])
    changed = dataclasses.replace(CFG, tax_system=TaxSystem.USN_INCOME, default_vat=Vat.VAT5)
    rows = ingest(ledger, Planner(ledger, changed), refund(ref_item(2), id=2, refund_of=1))
    assert [(i.name, i.vat) for i in rows["R2"][2].items] == [("Кофе", Vat.VAT22)]


def test_class3_a_settlement_mirrors_the_prepayment_as_issued(ledger):
    """Given a prepayment issued at 22/122 under ОСН and half of line 1 (10.01) refunded for 5.01, when the
    settings change and the goods are delivered, then the settlement offsets 22 % lines under ОСН
    for exactly what is left (5.00 of line 1)."""
    planner = Planner(ledger, PRE)
    ingest(ledger, planner, sale(item(1, price="10.01", vat=None), item(2), id=1),
           refund(ref_item(1, "0.5", "5.01"), id=2, refund_of=1))
    changed = dataclasses.replace(PRE, tax_system=TaxSystem.USN_INCOME, default_vat=Vat.VAT5)
    delivery_planner = DeliveryPlanner(ledger, changed, None, Planner(ledger, changed))
    [entry], rejected_rows = delivery_planner.plan_deliveries([ShopDelivery(1, 1, DAY_2026)])
    [row] = entry.planned
    assert not rejected_rows and row.receipt is not None, row.error
    assert [(i.vat, i.amount) for i in row.receipt.items] == [(Vat.VAT22, D("5.00")), (Vat.VAT22, D("100.00"))]
    assert row.receipt.tax_system is TaxSystem.OSN and row.lines == (1, 2)
    assert payments(row.receipt) == [(PaymentType.PREPAID, D("105.00"))]


# ---------------------------------------------------------------- 4. credit


def test_class4_goods_on_credit_are_paid_by_credit_not_electronically():
    [p] = build_receipts(sale(item(payment_method="credit"), amount=D(0)), CFG)
    assert payments(p.receipt) == [(PaymentType.CREDIT, D("100.00"))]


def test_class4_partial_payment_and_credit_splits_the_payments():
    row = sale(item(1, payment_method=5), item(2, price="50.00"), amount=D("110.00"))
    [p] = build_receipts(row, CFG)
    assert payments(p.receipt) == [(PaymentType.ELECTRONIC, D("110.00")), (PaymentType.CREDIT, D("40.00"))]
    err = rejected(sale(item(1, payment_method=5), amount=D("100.00")))
    assert err.field == "payments.amount" and "1214 = 5" in err.message


@pytest.mark.parametrize("method", ["credit_payment", 7, "Оплата кредита", "CREDIT PAYMENT"])
def test_class4_credit_payment_is_electronic_with_subject_payment(method):
    [p] = build_receipts(sale(item(payment_method=method)), CFG)
    assert p.receipt.items[0].payment_method is PaymentMethod.CREDIT_PAYMENT
    assert payments(p.receipt) == [(PaymentType.ELECTRONIC, D("100.00"))]
    assert p.receipt.items[0].payment_subject is PaymentSubject.PAYMENT


def test_class4_a_refund_of_goods_on_credit_cancels_credit():
    original = sale(item(payment_method="credit"), amount=D(0))
    [r] = build_receipts(refund(ref_item()), CFG, original=original)
    assert payments(r.receipt) == [(PaymentType.CREDIT, D("100.00"))]


# ---------------------------------------------------------------- 5. VAT vs tax system


@pytest.mark.parametrize("raw", ["vat5", "vat7", "vat5_105", "7/107"])
def test_class5_usn_rates_are_refused_under_osn_naming_field_and_rule(raw):
    method = 1 if "105" in raw or "107" in raw else None
    err = rejected(sale(item(vat=raw, payment_method=method)))
    assert err.field == "payment_items[0].vat" and "ОСН" in err.message and "УСН" in err.message
    assert build_receipts(sale(item(vat=raw, payment_method=method)), USN)


def test_class5_patent_allows_only_no_vat():
    patent = dataclasses.replace(CFG, tax_system=TaxSystem.PATENT, default_vat=Vat.NONE)
    assert rejected(sale(item(vat="vat22")), patent).field == "payment_items[0].vat"
    assert build_receipts(sale(item(vat="none")), patent)


# ---------------------------------------------------------------- 6. late payments


def test_class6_a_2025_payment_fiscalized_in_2026_is_a_correction_at_its_own_rate():
    row = sale(item(vat="vat20"), paid_at=dt.datetime(2025, 12, 31, 18, 0))
    [p] = build_receipts(row, CFG, today=dt.date(2026, 11, 20))
    c = p.receipt.correction
    assert c is not None and c.self_made and c.corrected_date == dt.date(2025, 12, 31)
    assert p.receipt.items[0].vat is Vat.VAT20 and any("late" in w for w in p.warnings)


@pytest.mark.parametrize("days, threshold, late", [(0, 0, False), (1, 0, True), (30, 30, False), (31, 30, True)])
def test_class6_lateness_follows_the_threshold(days, threshold, late):
    cfg = dataclasses.replace(CFG, late_after_days=threshold)
    day = dt.date(2026, 5, 1)
    assert is_late(day, day + dt.timedelta(days=days), cfg) is late


def test_class6_crossing_the_rate_change_is_late_whatever_the_threshold():
    assert is_late(dt.date(2025, 12, 31), dt.date(2026, 1, 1), dataclasses.replace(CFG, late_after_days=365))


# ---------------------------------------------------------------- 7. refunds of sales before go-live


def test_class7_a_refund_of_a_sale_before_go_live_reads_it_from_the_shop(ledger):
    """Given a sale id ≤ start_after_id (never ingested), when its refund is planned, then the sale is
    read from the shop, recorded as issued by another system (done, never sent), the refund is built,
    and a second refund finds the recorded lines in the ledger."""
    old = sale(item(1), item(2, price="40.00"), id=5)
    planner = Planner(ledger, CFG, start_after_id=10, fetch_sale=lambda sid: old if sid == 5 else None)
    rows = ingest(ledger, planner, refund(ref_item(1), id=11, refund_of=5))
    assert rows["X5"][0] == "done" and "another system" in rows["X5"][1]
    assert rows[make_tag(11, "refund", 1)][0] == "queued" and rows[make_tag(11, "refund", 1)][2].items[0].vat is Vat.VAT22
    rows = ingest(ledger, planner, refund(ref_item(1), id=12, refund_of=5))
    assert rows[make_tag(12, "refund", 1)][0] == "rejected" and "exceeds what is left" in rows[make_tag(12, "refund", 1)][1]
    without = Planner(ledger, CFG, start_after_id=10)   # no shop access: still the honest orphan message
    assert without.plan(refund(ref_item(1), id=13, refund_of=4))[0].error.startswith("payments.refund_of")


# ---------------------------------------------------------------- 8. discounted orders


def test_class8_a_discounted_order_is_refunded_line_by_line(ledger):
    """Given 100.00 + 3 × 50.00 with 10.01 off (line 2 split into 2 × 47.99 + 1 × 48.01), when line 2 is
    refunded one unit at a time, then each part keeps line 2's identity and the three add up to 143.99."""
    planner = Planner(ledger, CFG)
    row = sale(item(1), item(2, price="50.00", qty="3"), amount=D("239.99"), discount=D("10.01"), id=1)
    rows = ingest(ledger, planner, row)
    assert sum(i.amount for i in rows["S1"][2].items[1:]) == D("143.99")
    for n, a in enumerate(["48.00", "48.00", "47.99"]):
        rows = ingest(ledger, planner, refund(ref_item(2, "1", a), id=10 + n, refund_of=1))
        assert rows[make_tag(10 + n, "refund", 1)][0] == "queued", rows
    assert sum(rows[make_tag(10 + n, "refund", 1)][2].total for n in range(3)) == D("143.99")
    rows = ingest(ledger, planner, refund(ref_item(1, "1", "96.00"), id=20, refund_of=1))
    assert rows[make_tag(20, "refund", 1)][0] == "queued"   # line 1 kept its own 10.01 share: 100.00 − 4.00


# ---------------------------------------------------------------- 9. contacts


@pytest.mark.parametrize("raw, sent", [
    ("ivan@пример.рф", "ivan@xn--e1afmkfd.xn--p1ai"),
    ("ivan@xn--e1afmkfd.xn--p1ai", "ivan@xn--e1afmkfd.xn--p1ai"),
    ("Ivan.Petrov@почта.рус", "Ivan.Petrov@xn--80a1acny.xn--p1acf"),
])
def test_class9_internationalised_domains_are_accepted_as_a_labels(raw, sent):
    assert parse_email(raw, "payments.customer_email") == sent


def test_class9_a_broken_email_with_a_valid_phone_uses_the_phone_and_warns():
    [p] = build_receipts(sale(email="ivan@", phone="8 (912) 345-67-89"), CFG)
    assert p.receipt.customer_contact == "+79123456789"
    assert len(p.warnings) == 1 and "payments.customer_email" in p.warnings[0] and "ivan@" not in p.warnings[0]
    err = rejected(sale(email="ivan@", phone="12"))
    assert err.field == "payments.customer_email" and "customer_phone" in err.message


# ---------------------------------------------------------------- 10. shop codes


def test_class10_documented_vat_codes_and_the_alias_table_are_one_source():
    schema = (REPO / "sql" / "schema.sql").read_text(encoding="utf-8")
    documented = set(re.findall(r"\b(vat\d+(?:_\d+)?|none)\b", schema.split("vat              VARCHAR")[0]
                                .split("-- VAT rate code")[1]))
    assert documented == set(SHOP_VAT_CODES)
    docs = (REPO / "docs" / "receipts.md").read_text(encoding="utf-8")
    for code, vat in SHOP_VAT_CODES.items():
        assert CFG.vat_aliases[alias_key(code)] is vat and f"`{code}`" in docs


@pytest.mark.parametrize("kind", ["REFUND", " Refund ", "refund\t"])
def test_class10_kind_is_normalised_where_rows_are_read(kind):
    row = ShopPayment(id=2002, kind=kind, amount=D("100.00"), paid_at=DAY_2026, refund_of=1001,
                      items=(ref_item(),))
    assert row.kind == "refund"
    [r] = build_receipts(row, CFG, original=sale())
    assert r.stage == "refund"


def test_class10_an_unknown_code_is_called_unknown():
    err = rejected(sale(item(vat="vat18")))
    assert "unknown VAT rate code" in err.message and "date" not in err.message


# ---------------------------------------------------------------- 11. time zone


def _row(paid_at: dt.datetime) -> dict:
    return {"id": 1, "kind": "sale", "order_ref": None, "refund_of": None, "amount": D("1"), "customer_email": None,
            "customer_phone": None, "paid_at": paid_at, "discount": None}


def test_class11_a_utc_shop_new_year_sale_is_dated_in_local_time():
    [p] = assemble([_row(dt.datetime(2025, 12, 31, 21, 30))], [], SourceMapping(), ZoneInfo("UTC"))
    assert p.paid_at.utcoffset() == dt.timedelta(0)
    assert parse_paid_at(p.paid_at, "payments.paid_at") == dt.date(2026, 1, 1)
    assert build_receipts(sale(paid_at=p.paid_at), CFG)   # 22 % is valid on the local date
    [m] = assemble([_row(dt.datetime(2025, 12, 31, 21, 30))], [], SourceMapping())   # default: Moscow
    assert m.paid_at.isoformat() == "2025-12-31T21:30:00+03:00"
    assert ShopPayment.from_json(m.to_json()).paid_at == m.paid_at   # stored with its zone


def test_class11_the_local_zone_of_the_place_of_settlement_is_configurable():
    ekb = dataclasses.replace(CFG, timezone="Asia/Yekaterinburg")
    utc_2130 = dt.datetime(2026, 3, 31, 20, 30, tzinfo=dt.timezone.utc)   # 01:30 on 1 April in Yekaterinburg
    assert parse_paid_at(utc_2130, "f", ekb.zone) == dt.date(2026, 4, 1)
    with pytest.raises(ValueError, match="timezone"):
        dataclasses.replace(CFG, timezone="Mars/Olympus")


# ---------------------------------------------------------------- 12. three decimals


def test_class12_the_reference_schema_keeps_more_decimals_than_a_receipt():
    schema = (REPO / "sql" / "schema.sql").read_text(encoding="utf-8")
    for column in ("amount", "price", "quantity"):
        scales = [int(s) for s in re.findall(rf"\n\s+{column}\s+DECIMAL\(\d+,\s*(\d+)\)", schema)]
        assert scales and min(scales) >= 4, (column, scales)
    err = rejected(sale(item(price="33.297", amount="33.30")))
    assert err.field == "payment_items[0].price" and "2 decimal" in err.message


# ---------------------------------------------------------------- messages


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.binary(max_size=4),
                       st.decimals(allow_nan=False, places=4)),
       where=st.sampled_from(["price", "quantity", "amount", "vat", "name", "line_no", "payment_method"]))
def test_messages_never_use_python_wording(value, where):
    row = sale(dataclasses.replace(item(), **{where: value}), amount=D("100.00"))
    try:
        build_receipts(row, CFG)
    except InvalidPayment as exc:
        text = exc.describe(1001)
        assert "NoneType" not in text and "<class" not in text and "Traceback" not in text
        assert text.startswith("payment_items[0].") or text.startswith("payments.")
        assert "Next: " in text
