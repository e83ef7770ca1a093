"""Routing: a shop column's value → register group; no eligible register → rejected with the reason."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.ingest.routing import NoRegister, Router
from worker.ledger.records import PlannedRow
from worker.settings import load_settings
from worker.shop.rows import ShopPayment

ROUTER = Router("legal_entity", {"ООО Ромашка": "ooo", "ИП Иванов": "ip"}, None, frozenset({"ooo", "ip"}),
                group_of_sale={7: "ip"}.get)


def row(route: object, *, refund_of: int | None = None) -> ShopPayment:
    return ShopPayment(id=1, kind="refund" if refund_of else "sale", amount=Decimal("10.00"),
                       paid_at=dt.datetime(2026, 11, 30), route=route, refund_of=refund_of)


def test_each_value_goes_to_its_group() -> None:
    assert ROUTER.group_for(row("ООО Ромашка")) == "ooo"
    assert ROUTER.group_for(row(" ИП Иванов ")) == "ip"


def test_an_unknown_value_without_a_default_is_rejected_by_name() -> None:
    with pytest.raises(NoRegister, match=r"legal_entity='ООО Лютик' is not in routing.groups"):
        ROUTER.group_for(row("ООО Лютик"))


def test_a_group_without_an_enabled_register_is_rejected() -> None:
    r = Router("legal_entity", {"ООО Ромашка": "ooo"}, None, frozenset({"ip"}))
    with pytest.raises(NoRegister, match=r"group 'ooo', which has no enabled register \(groups with registers: ip\)"):
        r.group_for(row("ООО Ромашка"))


def test_a_refund_without_a_value_goes_where_its_sale_went() -> None:
    assert ROUTER.group_for(row(None, refund_of=7)) == "ip"


def test_route_rejects_every_buildable_row_with_the_message() -> None:
    rows = (PlannedRow("sale", 1, "S1", receipt=object()),)  # type: ignore[arg-type]
    out = ROUTER.route(row("nobody"), rows)
    assert out[0].receipt is None and "routing: legal_entity='nobody'" in (out[0].error or "")
    assert ROUTER.route(row("ИП Иванов"), rows)[0].group == "ip"


def test_no_routing_sends_everything_to_the_default_group() -> None:
    assert Router.single().group_for(row("anything")) == "default"


def test_settings_name_bad_registers_and_routing(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("registers:\n  - {name: a, url: 'emulator:x', group: ooo, inn: '7701234567'}\n"
                 "routing: {column: legal_entity, groups: {'ООО Ромашка': ooo}, default: null}\n")
    s = load_settings(p)
    assert s.registers[0].group == "ooo" and s.routing.default is None
    p.write_text("registers:\n  - {name: a, url: 'emulator:x', inn: '12345'}\n")
    with pytest.raises(ConfigError, match=r"registers\[0\].inn"):
        load_settings(p)
    p.write_text("routing: {groups: {x: ooo}}\n")
    with pytest.raises(ConfigError, match="routing.groups: set routing.column"):
        load_settings(p)
