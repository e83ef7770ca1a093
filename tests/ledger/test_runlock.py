"""The run lock across a ledger outage: its end is said once, its return once — not every check."""
from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from tests.chaos.faultproxy import FaultProxy
from worker.ledger.runlock import RunLock
from worker.ledger.store import Ledger


def test_a_ledger_outage_is_logged_once_and_the_lock_retaken_once(postgres_url: sa.URL,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Given a worker holding the run lock through a link that goes down, when it checks the lock ten
    times during the outage, then the session's end is one ERROR (each check raises the connection's
    error for the poll loop's backoff); when the link is back, the next check takes the lock again and
    says so once."""
    direct = sa.create_engine(postgres_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with FaultProxy(postgres_url.host, postgres_url.port) as proxy:
        led = Ledger(postgres_url.set(port=proxy.port).render_as_string(hide_password=False))
        try:
            with RunLock(led) as lock, caplog.at_level(logging.DEBUG, logger="worker.ledger.runlock"):
                assert lock.check()
                pid = lock._conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
                proxy.outage()
                with direct.connect() as conn:   # the server ends the session at once (no TCP race)
                    conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                raised = 0
                for _ in range(10):
                    try:
                        lock.check()
                    except sa.exc.DBAPIError:
                        raised += 1
                proxy.restore()
                assert lock.check()
                assert lock.check()
        finally:
            led.dispose()
            direct.dispose()
    records = [r for r in caplog.records if r.name == "worker.ledger.runlock"]
    ended = [r for r in records if "session ended" in r.getMessage()]
    retaken = [r for r in records if "run lock taken again" in r.getMessage()]
    assert raised == 10
    assert len(ended) == 1 and ended[0].levelno == logging.ERROR, [r.getMessage() for r in records]
    assert len(retaken) == 1 and retaken[0].levelno == logging.WARNING, [r.getMessage() for r in records]
    assert not [r for r in records if r.levelno >= logging.WARNING and r not in ended + retaken]
