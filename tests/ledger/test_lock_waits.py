"""PostgreSQL ledger: a worker's write never waits for ever behind a lease row's lock.

A link that drops in the middle of a group commit can leave the server holding that transaction (the
server has not seen its client go: a half-open connection) while the worker reconnects; every write of
the register then queues behind the lease row's ``FOR UPDATE`` lock. Seen in the chaos test
``test_postgres_ledger_restart_while_fiscalizing`` under load: the lane stood 28 s in ``check_fence``
behind a backend "idle in transaction" whose client was gone, until the old 30 s idle bound ended it.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests.shop import write_settings
from worker.app import open_ledger
from worker.defaults import CLUSTER_IDLE_TX_MAX_SECONDS, LEDGER_LOCK_TIMEOUT_SECONDS
from worker.ledger import migrate
from worker.ledger.leases import LeaseWrites
from worker.ledger.store import Ledger
from worker.settings import load_settings

#: scheduling slack on a loaded machine (CI runs the suite on two cores, several tests at once)
SLACK_S = 4.0


@pytest.fixture
def worker_ledger(postgres_url: sa.URL, tmp_path: Path) -> Ledger:
    """The ledger exactly as `kkt-worker run` opens it (default lease TTL), migrated."""
    url = postgres_url.render_as_string(hide_password=False)
    settings = load_settings(write_settings(tmp_path / "settings.yaml", source_url="sqlite:///shop.db",
                                            ledger_url=url, registers=[("kkt1", "emulator://reg")]))
    led = open_ledger(settings)
    migrate.upgrade(led.engine)
    yield led
    led.dispose()


def test_a_write_behind_a_held_lease_row_fails_within_the_lock_timeout(worker_ledger: Ledger,
                                                                        postgres_url: sa.URL) -> None:
    """Given another session holds kkt1's lease row locked and never finishes, when the worker renews
    the lease, then the renewal fails with LockNotAvailable within the lock timeout (it is retried like
    any ledger error) instead of waiting as long as that session lives."""
    fence = worker_ledger.acquire_lease("kkt1", "worker@here:1:1", ttl_s=60)
    other = sa.create_engine(postgres_url, poolclass=sa.NullPool)   # no timeouts of its own
    blocker = other.connect()
    try:
        blocker.begin()
        LeaseWrites.check_fence(blocker, fence)      # SELECT … FOR UPDATE, then silence
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            fut = pool.submit(worker_ledger.renew_lease, fence, 60)
            try:
                with pytest.raises(sa.exc.OperationalError) as caught:
                    fut.result(timeout=LEDGER_LOCK_TIMEOUT_SECONDS + SLACK_S)
            finally:
                blocker.rollback()                   # an old worker waiting for ever is let go here
        waited = time.monotonic() - started
    finally:
        blocker.close()
        other.dispose()
    assert isinstance(caught.value.orig, psycopg.errors.LockNotAvailable), caught.value
    assert LEDGER_LOCK_TIMEOUT_SECONDS - 0.5 <= waited <= LEDGER_LOCK_TIMEOUT_SECONDS + SLACK_S
    assert worker_ledger.renew_lease(fence, 60).epoch == fence.epoch   # the lock is free: it renews


def test_a_worker_session_left_inside_a_transaction_is_ended_within_seconds(worker_ledger: Ledger,
                                                                            postgres_url: sa.URL) -> None:
    """Given a worker session that locked kkt1's lease row and then went silent inside its transaction
    (its client gone, unseen by the server), then the server ends it within CLUSTER_IDLE_TX_MAX_SECONDS
    and the row can be locked again — the worker's next write does not wait half a minute."""
    fence = worker_ledger.acquire_lease("kkt1", "worker@here:1:1", ttl_s=60)
    orphan = worker_ledger.engine.connect()
    orphan.begin()
    LeaseWrites.check_fence(orphan, fence)
    started = time.monotonic()
    probe = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    freed = None
    try:
        while time.monotonic() - started < 60:
            with probe.connect() as conn:
                try:
                    conn.execute(sa.text("SELECT 1 FROM register_leases WHERE register = 'kkt1' FOR UPDATE NOWAIT"))
                    freed = time.monotonic() - started
                    break
                except sa.exc.OperationalError:      # still locked by the silent session
                    pass
            time.sleep(0.2)
    finally:
        probe.dispose()
        orphan.invalidate()
        orphan.close()
    assert freed is not None and freed <= CLUSTER_IDLE_TX_MAX_SECONDS + SLACK_S, freed
