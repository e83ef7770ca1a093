"""ShopPayment.to_json: the fast field walk gives the snapshot dataclasses.asdict gave, byte for byte."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.shop.rows import ShopItem, ShopPayment
from worker.shop.source import SourceMapping, assemble

# every kind of value a shop row can carry before validation: what the drivers return, and junk
values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.binary(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=3), st.decimals(),
    st.datetimes(), st.datetimes(timezones=st.just(ZoneInfo("Europe/Moscow"))),
)
codes = st.lists(st.one_of(st.binary(min_size=1, max_size=12), st.text(min_size=1, max_size=12)), max_size=3)
items = st.builds(ShopItem, line_no=values, name=values, price=values, quantity=values, amount=values, vat=values,
                  payment_method=values, payment_subject=values, measure_unit=values,
                  marking_codes=st.one_of(codes.map(tuple), codes))
payments = st.builds(ShopPayment, id=st.integers(0, 10**9), kind=values, amount=values, paid_at=values,
                     customer_email=values, customer_phone=values, order_ref=values, refund_of=values,
                     discount=values, route=values, items=st.one_of(st.lists(items, max_size=3).map(tuple),
                                                                    st.lists(items, max_size=3)))


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(payments)
def test_to_json_is_what_asdict_gave(p: ShopPayment) -> None:
    """Given any shop row, when snapshotted, then the JSON text equals the asdict-based snapshot's."""
    fast, generic = p.to_json(), p._to_json_generic()
    assert fast == generic
    assert _dumps(fast) == _dumps(generic)   # same keys in the same order: the same ledger text
    # the text the ledger stores (kkt_drivers.json_text: compact) reads back as the same keys, values and order
    assert json.loads(p.snapshot(), object_pairs_hook=list) == json.loads(_dumps(generic), object_pairs_hook=list)


def test_to_json_round_trip_keeps_money_times_and_codes() -> None:
    """Given a row with Decimals, an aware time and byte codes, when stored and read back, then it is equal."""
    p = ShopPayment(id=7, kind="sale", amount=Decimal("150.50"),
                    paid_at=dt.datetime(2026, 11, 20, 12, tzinfo=ZoneInfo("Europe/Moscow")),
                    customer_email="a@b.ru", items=(ShopItem(1, "Товар", Decimal("150.50"), Decimal("1.000"),
                                                             Decimal("150.50"), "vat22",
                                                             marking_codes=(b"\x1d01\x00", "text")),))
    snap = json.loads(_dumps(p.to_json()))
    assert ShopPayment.from_json(snap) == p
    assert snap["items"][0]["marking_codes"][0] == {"__base64__": "HTAxAA=="}
    assert snap["amount"] == {"__decimal__": "150.50"}


@pytest.mark.parametrize(("column", "raw", "read"), [
    ("price", "150.50", "150.50"),          # the column has the receipt's places: kept as is
    ("price", "150.500000", "150.50"),      # a wider column: trailing zeros trimmed to kopecks
    ("price", "33.29700", "33.297"),        # more places than kopecks really written: kept for validation
    ("price", "5", "5"),                    # fewer places: kept as is (validation quantizes)
    ("quantity", "0.750000", "0.750"),
    ("quantity", "2.000", "2.000"),
    ("quantity", "1E+2", "1E+2"),
])
def test_assemble_trims_wide_decimal_columns_exactly(column: str, raw: str, read: str) -> None:
    """Given a DECIMAL column wider than the receipt needs, when read, then only zeros are dropped."""
    item = {"payment_id": 1, "line_no": 1, "name": "Товар", "price": Decimal("1.00"), "quantity": Decimal("1.000"),
            "amount": Decimal("1.00"), "vat": None, "payment_method": None, "payment_subject": None,
            "measure_unit": None, column: Decimal(raw)}
    row = {"id": 1, "kind": "sale", "amount": Decimal("1.00"), "paid_at": dt.datetime(2026, 11, 20, 12),
           "customer_email": None, "customer_phone": None, "order_ref": None, "refund_of": None, "discount": None}
    [p] = assemble([row], [item], SourceMapping())
    assert str(getattr(p.items[0], column)) == read
