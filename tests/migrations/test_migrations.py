"""`upgrade head` produces exactly the tables the code uses, on SQLite and on PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from worker.ledger import migrate
from worker.ledger.db import create_ledger_engine, sqlite_durability
from worker.ledger.schema import metadata


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url").render_as_string(hide_password=False)
    eng = create_ledger_engine(url)
    yield eng
    eng.dispose()


def test_upgrade_head_equals_models(engine) -> None:
    """After `migrate`, alembic finds no difference between the database and the models."""
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_upgrade_is_repeatable(engine) -> None:
    """Running `migrate` twice is harmless."""
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_sqlite_ledger_is_durable_and_private(tmp_path: Path) -> None:
    """The SQLite ledger runs WAL with synchronous=FULL and a busy timeout, and its file is 0600."""
    path = tmp_path / "sub" / "ledger.db"
    eng = create_ledger_engine(f"sqlite:///{path}")
    migrate.upgrade(eng)
    pragmas = sqlite_durability(eng)
    assert pragmas["journal_mode"] == "wal" and pragmas["synchronous"] == 2 and pragmas["busy_timeout"] > 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_0003_gives_existing_receipts_what_they_wait_for(engine) -> None:
    """Receipts queued before 0003 keep waiting after it: refund → its sale (a prepaid refund → the
    prepayment), settlement → its prepayment, correction part 2 → the correction before it."""
    import json

    from sqlalchemy import text

    migrate.upgrade(engine, "0002")
    now = "2026-11-30 12:00:00"
    body = json.dumps({"items": [{"payment_method": 1}]})
    with engine.begin() as conn:
        for pid, source, kind, refund_of in ((1, 10, "sale", None), (2, 11, "refund", 10), (3, 12, "refund", 10)):
            conn.execute(text("INSERT INTO payments (id, source_id, kind, refund_of, snapshot, ingested_at) "
                              "VALUES (:id, :s, :k, :r, '{}', :now)"), dict(id=pid, s=source, k=kind, r=refund_of, now=now))
        for rid, pid, stage, part, b in ((1, 1, "prepayment", 1, None), (2, 1, "settlement", 1, None),
                                         (3, 2, "refund", 1, None), (4, 3, "refund", 1, body),
                                         (5, 1, "correction", 1, None), (6, 1, "correction", 2, None)):
            conn.execute(text("INSERT INTO receipts (id, payment_id, stage, part, tag, state, body, attempts, "
                              "next_attempt_at, created_at, updated_at) VALUES (:id, :p, :st, :part, :tag, 'queued', "
                              ":b, 0, :now, :now, :now)"),
                         dict(id=rid, p=pid, st=stage, part=part, tag=f"T{rid}", b=b, now=now))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        waits = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT id, waits_for_source, waits_for_stage FROM receipts"))}
    assert waits == {1: (None, None), 2: (10, "prepayment"), 3: (10, None), 4: (10, "prepayment"),
                     5: (None, None), 6: (10, "correction")}
