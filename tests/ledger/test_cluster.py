"""Cluster mode in the ledger: the ingest lease fences cursor and gaps, the workers table, the run lock
shared by cluster workers, the settings refusing cluster mode on SQLite, the status view."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from worker.defaults import INGEST_LEASE
from worker.errors import ConfigError, LeaseLost, LockHeld
from worker.ingest.lease import IngestLease
from worker.ledger import migrate
from worker.ledger.cluster_writes import Member
from worker.ledger.runlock import RunLock
from worker.ledger.store import Ledger
from worker.ops.cluster import DOWN, LIVE, STOPPED, cluster_view
from worker.ops.snapshot import take_snapshot
from worker.ops.health import evaluate
from worker.settings import load_settings

NOW = dt.datetime(2026, 11, 30, 12, 0, 0)


def position(ledger: Ledger, cursor: int, expected: int, gaps: tuple[int, ...] = (), fence=None) -> int:
    return ledger.apply_ingest("payments", cursor=cursor, new_gaps=list(gaps), filled=[], expired=[], entries=[],
                               now=NOW, expected_cursor=expected, fence=fence)


def test_a_stalled_ex_ingester_cannot_move_the_cursor_back(ledger: Ledger) -> None:
    """Given A held the ingest lease and froze after reading cursor 10, when B took the lease over and moved
    the cursor to 50, then A's write (expected cursor 10, cursor 20) is refused by the epoch — not just
    by the cursor guard: even with B's cursor as its expectation it writes nothing."""
    a = IngestLease(ledger, "worker@a:1:1", ttl_s=2)      # long enough for B's look on a loaded machine
    assert a.ensure()
    position(ledger, 10, 0, fence=a.current())
    b = IngestLease(ledger, "worker@b:2:2", ttl_s=30)
    assert not b.ensure()                                # A's lease is live: B stands by
    time.sleep(2.5)                                      # A froze past its lease (server clock)
    assert b.ensure() and b.fence.epoch == a.fence.epoch + 1
    position(ledger, 50, 10, gaps=(33,), fence=b.current())
    with pytest.raises(LeaseLost):
        position(ledger, 20, 10, fence=a.current())
    with pytest.raises(LeaseLost):                       # the epoch, not the cursor guard, refuses it
        position(ledger, 20, 50, fence=a.current())
    assert ledger.ingest_position("payments")[0] == 50
    assert [g.id for g in ledger.ingest_position("payments")[1]] == [33]
    assert not a.ensure() and a.fence is None            # A learns it lost the lease, and stands by
    not_held = IngestLease(ledger, "worker@c:3:3", ttl_s=30)
    with pytest.raises(LeaseLost):                       # never an unfenced write without the lease
        position(ledger, 60, 50, fence=not_held.current())


def member(node: str, pid: int, registers: tuple[str, ...] = ("kkt1",)) -> Member:
    return Member(node=node, holder=f"worker@{node}:{pid}:1", host=f"host-{node}", pid=pid, version="0.1.0",
                  registers=registers)


def test_workers_table_join_beat_leave_and_status_says_down(ledger: Ledger) -> None:
    """Join, heartbeat on the server clock, a live node name refused twice, clean stop vs stale = DOWN."""
    a, b = member("a", 11, ("kkt1", "net")), member("b", 22, ("kkt2", "net"))
    ledger.join_cluster(a, stale_s=60)
    ledger.join_cluster(b, stale_s=60)
    with pytest.raises(LockHeld, match="cluster.node 'a' is in use"):
        ledger.join_cluster(member("a", 33), stale_s=60)
    ledger.acquire_lease("net", a.holder, ttl_s=30)
    ledger.acquire_lease(INGEST_LEASE, b.holder, ttl_s=30)
    ledger.cluster_heartbeat(a, [{"name": "kkt1", "state": "running"}])
    now, rows = ledger.cluster_view()
    view = cluster_view(now, rows, ledger.leases(), stale_s=60)
    assert [w["status"] for w in view["workers"]] == [LIVE, LIVE]
    assert view["ingest"]["holder"] == b.holder
    regs = {r["register"]: r for r in view["registers"]}
    assert regs["kkt1"]["placement"] == "pinned" and regs["kkt1"]["nodes"] == ["a"]
    assert regs["net"]["placement"] == "network" and regs["net"]["lease"]["holder"] == a.holder
    assert INGEST_LEASE not in regs
    time.sleep(1.2)
    ledger.cluster_heartbeat(a)
    ledger.leave_cluster(member("b", 99))                # not b's holder: changes nothing
    now, rows = ledger.cluster_view()
    states = {w["node"]: w["status"] for w in cluster_view(now, rows, [], stale_s=1.0)["workers"]}
    assert states == {"a": LIVE, "b": DOWN}
    problems = evaluate(take_snapshot(ledger, heartbeat_stale_s=1.0))
    assert [p.key for p in problems if p.code == "node_down"] == ["node_down:b"]
    ledger.leave_cluster(b)
    now, rows = ledger.cluster_view()
    assert {w["node"]: w["status"] for w in cluster_view(now, rows, [], stale_s=1.0)["workers"]}["b"] == STOPPED
    ledger.join_cluster(member("b", 44), stale_s=60)     # a stopped node's name is free again


def test_cluster_workers_share_the_run_lock_a_single_worker_does_not(postgres_url: sa.URL) -> None:
    """Cluster workers take the PostgreSQL run lock shared: any number together; a worker without cluster
    mode is refused next to them, and they next to it."""
    url = postgres_url.render_as_string(hide_password=False)
    led = Ledger(url)
    migrate.upgrade(led.engine)
    try:
        with RunLock(led, shared=True), RunLock(led, shared=True):
            with pytest.raises(LockHeld, match="one worker per ledger"):
                RunLock(led).__enter__()
        with RunLock(led):
            with pytest.raises(LockHeld, match="without cluster mode"):
                RunLock(led, shared=True).__enter__()
    finally:
        led.dispose()


def test_cluster_mode_on_a_sqlite_ledger_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "settings.yaml"
    p.write_text("ledger: {url: 'sqlite:///x.db'}\ncluster: {enabled: true}\n")
    with pytest.raises(ConfigError, match="cluster.enabled: several workers need a PostgreSQL ledger"):
        load_settings(p)
    p.write_text("ledger: {url: 'postgresql://h/db'}\ncluster: {enabled: true, node: 'shop 1'}\n")
    with pytest.raises(ConfigError, match="cluster.node"):
        load_settings(p)
    p.write_text("ledger: {url: 'postgresql://h/db'}\ncluster: {enabled: true, node: shop-1}\n")
    assert load_settings(p).cluster.node == "shop-1"


def test_a_lane_frozen_after_its_send_check_does_not_close_once_its_lease_was_taken(ledger: Ledger,
                                                                                 tmp_path: Path) -> None:
    """Given a lane that passed its send check and then froze (SIGSTOP) longer than its lease, while another
    node took the register over, when it thaws inside the driver with the receipt just opened, then it
    renews first, finds the lease lost and closes nothing: the receipt stays "sending" for the new holder,
    and the register holds no receipt document."""
    from tests.ledger.test_fiscalize import make_lane
    from tests.ledger.test_ledger import entry, ingest
    from tests.shop import receipts_by_tag
    from worker.ledger.states import State

    lane = make_lane(ledger, tmp_path / "reg")
    clock = [1000.0]
    lane.lease.clock = lambda: clock[0]
    assert lane.lease.ensure()
    lane.step()                                          # recovery, shift, examination: ready to send
    ingest(ledger, [entry(1)], cursor=1)
    real = lane.driver.fiscalize

    def frozen_then_thawed(receipt):  # type: ignore[no-untyped-def]
        clock[0] += lane.lease.ttl_s * 2                 # the freeze: past the lease by this process's clock
        ledger.release_lease(lane.lease.fence)           # … and by the server's: another node takes it
        ledger.acquire_lease(lane.name, "worker@elsewhere:7:7", ttl_s=30)
        return real(receipt)

    lane.driver.fiscalize = frozen_then_thawed           # type: ignore[method-assign]
    lane.step()
    assert lane.lease.fence is None                      # it knows: it stands by
    assert receipts_by_tag(tmp_path / "reg") == {}       # nothing closed on the register
    [rec] = ledger.list_receipts()
    assert rec.state is State.SENDING and rec.register == lane.name   # left for the new holder's recovery
    lane.driver.disconnect()
