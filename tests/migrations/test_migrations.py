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
