"""The register pool through the real CLI: payments routed by a shop column to register groups, a
register failing half its calls in one group, a payment no register may print — each payment on
exactly one register of its own group, checked on the registers' own journals."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from tests.chaos.invariants import check
from tests.shop import insert_payment, receipts_by_tag, run_cli, sale_items, write_settings
from worker.receipts.config import make_tag

pytestmark = pytest.mark.acceptance

ENTITIES = {"ООО Ромашка": "ooo", "ИП Иванов": "ip"}


def test_payments_go_to_their_groups_and_a_failing_register_does_not_hold_them(shop_schema: sa.URL,
                                                                                tmp_path: Path) -> None:
    eng = sa.create_engine(shop_schema, poolclass=sa.NullPool)
    with eng.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE payments ADD COLUMN legal_entity VARCHAR(32) NULL")
        ids: dict[int, str] = {}
        for i in range(14):
            entity = "ООО Ромашка" if i % 2 else "ИП Иванов"
            pid = insert_payment(conn, sale_items(1, price=f"{100 + i}.00"))
            conn.exec_driver_sql("UPDATE payments SET legal_entity = %s WHERE id = %s", (entity, pid))
            ids[pid] = entity
        stray = insert_payment(conn, sale_items(1))
        conn.exec_driver_sql("UPDATE payments SET legal_entity = 'ООО Лютик' WHERE id = %s", (stray,))
    eng.dispose()

    regs = {"ooo1": tmp_path / "ooo1", "ooo2": tmp_path / "ooo2", "ip1": tmp_path / "ip1"}
    settings = write_settings(
        tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", registers=[],
        routing={"column": "legal_entity", "groups": ENTITIES, "default": None})
    data = yaml.safe_load(settings.read_text())
    data["registers"] = [
        {"name": "ooo1", "url": f"emulator://{regs['ooo1']}?serial=OOO1&inn=7701234567", "group": "ooo",
         "inn": "7701234567"},
        # a link that fails half the time, certainly before anything is sent
        {"name": "ooo2", "url": f"emulator://{regs['ooo2']}?serial=OOO2&fail_before_send=0.5&seed=4",
         "group": "ooo"},
        {"name": "ip1", "url": f"emulator://{regs['ip1']}?serial=IP1&inn=500100732259", "group": "ip",
         "inn": "500100732259"},
    ]
    data["retry"]["max_attempts"] = 50
    settings.write_text(yaml.safe_dump(data, allow_unicode=True))
    run_cli(settings, "migrate")
    run_cli(settings, "run", "--burst", "--burst-timeout", "90", timeout=150)

    journals = {name: receipts_by_tag(path) for name, path in regs.items()}
    payment_of = {make_tag(pid, "sale", 1): pid for pid in ids}
    printed = [tag for docs in journals.values() for tag, copies in docs.items() for _ in copies]
    assert sorted(printed) == sorted(payment_of)                  # each payment once, the stray one never
    for name, docs in journals.items():
        group = "ip" if name == "ip1" else "ooo"
        for tag in docs:
            assert ENTITIES[ids[payment_of[tag]]] == group, f"{tag} printed by {name} of group {group}"
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = dict(db.execute("SELECT p.source_id, r.state || '|' || r.register_group || '|' || "
                               "COALESCE(r.last_error, '') FROM receipts r JOIN payments p ON p.id = r.payment_id"))
        by_register = dict(db.execute("SELECT register, COUNT(*) FROM receipts WHERE state = 'done' GROUP BY register"))
    state, _group, error = rows[stray].split("|", 2)
    assert state == "rejected" and "legal_entity='ООО Лютик' is not in routing.groups" in error
    for pid, entity in ids.items():
        assert rows[pid].split("|")[:2] == ["done", ENTITIES[entity]]
    assert by_register["ip1"] == 7 and by_register.get("ooo1", 0) + by_register.get("ooo2", 0) == 7
    assert by_register["ooo1"] >= 4          # the healthy register carried its failing sibling's share
    report = check(shop_schema, f"sqlite:///{tmp_path / 'ledger.db'}", regs.values())
    assert report.ok, report.summary()
