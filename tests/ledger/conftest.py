"""The ledger suite runs twice: on SQLite (the default ledger) and on the real PostgreSQL."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from worker.ledger import migrate
from worker.ledger.store import Ledger


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A migrated, empty ledger on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url").render_as_string(hide_password=False)
    led = Ledger(url)
    migrate.upgrade(led.engine)
    yield led
    led.dispose()
