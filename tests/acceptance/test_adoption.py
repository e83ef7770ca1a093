"""The register is the truth: a restored, lost or rebuilt ledger never prints a receipt twice.

Every check is made against the emulated register's own journal (its fiscal storage). The tests drive
the real CLI; the only other writer is "another program" printing on the same register through the
emulator's model directly.
"""
from __future__ import annotations

import json
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from kkt_drivers.emulator.model import RegisterModel
from kkt_drivers.receipt import Item, Operation, Payment, PaymentType, TaxSystem, Vat
from tests.chaos.invariants import check
from tests.shop import insert_payment, journal, receipts_by_tag, run_cli, sale_items, write_settings

pytestmark = pytest.mark.acceptance


def make(tmp_path: Path, shop: sa.URL, ledger: str = "ledger.db", **sections) -> tuple[Path, Path]:
    reg = tmp_path / "reg"
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                              ledger_url=f"sqlite:///{tmp_path / ledger}",
                              registers=[("kkt1", f"emulator://{reg}")], **sections)
    run_cli(settings, "migrate")
    return settings, reg


def pay(shop: sa.URL, n: int) -> None:
    with sa.create_engine(shop, poolclass=sa.NullPool).begin() as conn:
        for _ in range(n):
            insert_payment(conn, sale_items(2))


def burst(settings: Path) -> str:
    return run_cli(settings, "run", "--burst", "--burst-timeout", "60").stderr


def sqlite_copy(src: Path, dst: Path) -> None:
    """SQLite's online backup API (what docs/backup-restore.md tells an admin to use)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def ledger_rows(path: Path) -> dict[str, tuple]:
    with sqlite3.connect(path) as conn:
        return {r[0]: r[1:] for r in conn.execute("SELECT tag, state, fd_number, fiscal_sign FROM receipts")}


def test_restored_backup_adopts_what_was_printed_after_it(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Backup → 3 more payments printed → restore → run: the 3 are adopted as done with the register's
    requisites, nothing is printed twice, and the worker goes on with new payments."""
    settings, reg = make(tmp_path, shop_schema)
    pay(shop_schema, 4)
    burst(settings)
    sqlite_copy(tmp_path / "ledger.db", tmp_path / "backup.db")
    pay(shop_schema, 3)
    burst(settings)
    printed = len(journal(reg))
    sqlite_copy(tmp_path / "backup.db", tmp_path / "ledger.db")          # the restore
    assert ledger_rows(tmp_path / "ledger.db").keys() == {"S1", "S2", "S3", "S4"}

    err = burst(settings)
    assert len(journal(reg)) == printed, "a restored ledger printed again"
    docs = receipts_by_tag(reg)
    rows = ledger_rows(tmp_path / "ledger.db")
    for tag in ("S5", "S6", "S7"):
        assert rows[tag] == ("done", docs[tag][0]["fd"], docs[tag][0]["fp"]), tag
    assert "adopted FD" in err or "adopted at ingest" in err
    assert "adopt" in run_cli(settings, "ledger", "show", "6").stdout

    pay(shop_schema, 2)                                                    # and life goes on
    burst(settings)
    report = check(shop_schema, f"sqlite:///{tmp_path / 'ledger.db'}", [reg])
    print(json.dumps(report.summary()))
    assert report.ok and report.done == 9 and not report.duplicates, report.summary()


def test_lost_ledger_rebuilt_from_zero_prints_nothing_twice(shop_schema: sa.URL, tmp_path: Path) -> None:
    """The ledger is lost; a new one starts from start_after_id 0: every payment already on the register
    is adopted (its tag is deterministic from the shop id), only new ones are printed."""
    settings, reg = make(tmp_path, shop_schema)
    pay(shop_schema, 5)
    burst(settings)
    before = len(journal(reg))
    for p in tmp_path.glob("ledger.db*"):
        p.unlink()
    run_cli(settings, "migrate")
    pay(shop_schema, 2)
    err = burst(settings)
    assert len(journal(reg)) == before + 2
    report = check(shop_schema, f"sqlite:///{tmp_path / 'ledger.db'}", [reg])
    print(json.dumps(report.summary()))
    assert report.ok and report.done == 7 and not report.duplicates, report.summary()
    assert "adopted" in err


def test_tags_seen_before_their_payment_are_adopted_at_ingest(shop_schema: sa.URL, tmp_path: Path) -> None:
    """A new ledger going live after id 5 examines the register first (S1..S5 unclaimed); a later
    backfill of 1..5 adopts them at ingest instead of printing them."""
    settings, reg = make(tmp_path, shop_schema)
    pay(shop_schema, 5)
    burst(settings)
    before = len(journal(reg))
    for p in tmp_path.glob("ledger.db*"):
        p.unlink()
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
                              ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", registers=[("kkt1", f"emulator://{reg}")],
                              source={"start_after_id": 5})
    run_cli(settings, "migrate")
    burst(settings)
    status = json.loads(run_cli(settings, "status", "--json").stdout)
    assert {"register": "kkt1", "disposition": "unclaimed", "n": 5} in status["register_documents"]
    out = run_cli(settings, "backfill", "--from-id", "1", "--to-id", "5", "--yes")
    assert "added 5 payments" in out.stdout and "adopted at ingest" in out.stderr
    burst(settings)
    assert len(journal(reg)) == before
    report = check(shop_schema, f"sqlite:///{tmp_path / 'ledger.db'}", [reg])
    assert report.ok and report.done == 5, report.summary()


def foreign_sale(reg: Path, tag: str | None) -> None:
    """Another program sells on the same register (shift already open)."""
    model = RegisterModel(reg)
    model.open_receipt(Operation.SALE)
    model.add_item(Item("Чужой товар", Decimal("55.00"), Decimal("1"), Decimal("55.00"), Vat.VAT22))
    if tag:
        model.add_requisite(1192, tag)
    model.close_receipt([Payment(PaymentType.CASH, Decimal("55.00"))], TaxSystem.OSN)


def test_another_program_printing_between_our_receipts(shop_schema: sa.URL, tmp_path: Path) -> None:
    """Foreign documents (no tag, a tag not ours, an X/Z report) are examined once and recorded as
    foreign; our receipts are unaffected."""
    settings, reg = make(tmp_path, shop_schema)
    pay(shop_schema, 3)
    burst(settings)
    foreign_sale(reg, None)
    foreign_sale(reg, "POS-77")
    pay(shop_schema, 3)
    burst(settings)
    foreign_sale(reg, None)
    pay(shop_schema, 1)
    burst(settings)
    status = json.loads(run_cli(settings, "status", "--json").stdout)
    dispositions = {d["disposition"]: d["n"] for d in status["register_documents"]}
    # POS-77 looks like a tag but no payment of ours has it: kept "unclaimed" (never printed by us)
    assert dispositions.get("foreign", 0) >= 2 and dispositions.get("unclaimed") == 1, dispositions
    last_fd = max(d["fd"] for d in journal(reg))
    assert status["watermarks"][0]["last_fd"] == last_fd
    report = check(shop_schema, f"sqlite:///{tmp_path / 'ledger.db'}", [reg])
    ours = Counter(d["tag"] for d in journal(reg) if d["kind"] == "receipt" and (d.get("tag") or "").startswith("S"))
    assert report.done == 7 and max(ours.values()) == 1 and len(ours) == 7
    # the invariant checker sees the 3 foreign sales as documents without a ledger row (the two untagged
    # ones share "no tag"), and nothing else
    assert len(report.orphans) == 3 and report.duplicates == [None] and not report.mismatched, report.summary()


def test_long_history_waits_for_the_admin(shop_schema: sa.URL, tmp_path: Path) -> None:
    """A new ledger facing a register with more unexamined documents than adoption.max_scan_documents
    sends nothing until `adopt` examines them (with progress); then nothing is printed twice. `adopt
    --dry-run` and `adopt` without --yes in a script change nothing."""
    settings, reg = make(tmp_path, shop_schema)
    pay(shop_schema, 6)
    burst(settings)
    before = len(journal(reg))
    for p in tmp_path.glob("ledger.db*"):
        p.unlink()
    settings = write_settings(tmp_path / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
                              ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", registers=[("kkt1", f"emulator://{reg}")],
                              adoption={"max_scan_documents": 3})
    run_cli(settings, "migrate")
    out = run_cli(settings, "run", "--burst", "--burst-timeout", "5", check=False)
    assert out.returncode == 3 and "kkt-worker adopt --register kkt1" in out.stderr
    assert len(journal(reg)) == before
    assert "blocked" in run_cli(settings, "status").stdout
    dry = run_cli(settings, "adopt", "--register", "kkt1", "--from-fd", "1", "--dry-run").stdout
    assert "would examine FD 1..7" in dry and "7 document(s) to read back" in dry and "dry run" in dry, dry
    dry = run_cli(settings, "adopt", "--register", "kkt1", "--from-fd", "5", "--dry-run").stdout
    assert "FD 1..4 count as accounted for WITHOUT being read" in dry, dry
    refused = run_cli(settings, "adopt", "--register", "kkt1", "--from-fd", "1", check=False)   # a script, no --yes
    assert refused.returncode == 2 and "add --yes" in refused.stderr, refused.stderr
    with sqlite3.connect(tmp_path / "ledger.db") as conn:    # neither dry runs nor the refusal recorded anything
        assert conn.execute("SELECT count(*) FROM register_documents").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM register_watermarks").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM receipts WHERE state = 'done'").fetchone() == (0,)
    assert "blocked" in run_cli(settings, "status").stdout
    adopted = run_cli(settings, "adopt", "--register", "kkt1", "--from-fd", "1", "--yes")
    assert "FD 7 of 7" in adopted.stdout and "adopted 6" in adopted.stdout, adopted.stdout
    burst(settings)
    assert len(journal(reg)) == before
    report = check(shop_schema, f"sqlite:///{tmp_path / 'ledger.db'}", [reg])
    assert report.ok and report.done == 6, report.summary()
