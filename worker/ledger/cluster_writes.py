"""Cluster mode's membership: one ``workers`` row per node, its heartbeat on the ledger server's clock.

A worker joins at start (its node, holder id, host, pid, version and the registers in its settings),
beats on the lanes' heartbeat cadence in the SAME transaction as the lane states (an idle cluster
worker adds one small UPDATE every ``LANE_HEARTBEAT_SECONDS``, not a transaction of its own), and marks
itself stopped on a clean exit. ``status`` calls a running worker whose heartbeat is older than
``health.heartbeat_stale_s`` DOWN. The table is informational: who may talk to a register is decided
by the register leases alone (:mod:`worker.ledger.leases`).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import insert, select, update

from worker.errors import LockHeld
from worker.ledger.lane_writes import LaneWrites
from worker.ledger.leases import db_now, holder_is_dead
from worker.ledger.records import utcnow
from worker.ledger.schema import workers

#: ``workers.state`` values
RUNNING = "running"
STOPPED = "stopped"


@dataclass(frozen=True)
class Member:
    """One cluster worker as it describes itself."""

    node: str
    holder: str
    host: str
    pid: int
    version: str
    registers: tuple[str, ...]


class ClusterWrites(LaneWrites):
    """Joining, beating, leaving; the cluster view for ``status``."""

    def join_cluster(self, m: Member, *, stale_s: float) -> None:
        """Record *m* as running. LockHeld when another live worker (fresh heartbeat, not a dead process of
        this node) already runs under the same node name: node names must be unique per host."""
        with self.write() as conn:
            now = db_now(conn)
            row = conn.execute(select(workers).where(workers.c.node == m.node).with_for_update()).first()
            values = dict(holder=m.holder, host=m.host[:255], pid=m.pid, version=m.version[:32],
                          registers=json.dumps(list(m.registers)), state=RUNNING, started_at=now, heartbeat_at=now)
            if row is None:
                conn.execute(insert(workers).values(node=m.node, **values))
                return
            fresh = (now - row.heartbeat_at).total_seconds() <= stale_s
            if row.state == RUNNING and fresh and row.holder != m.holder and not holder_is_dead(row.holder):
                raise LockHeld(f"cluster.node {m.node!r} is in use by {row.holder} on host {row.host} (heartbeat "
                               f"{(now - row.heartbeat_at).total_seconds():.0f} s ago): give each worker its own node")
            conn.execute(update(workers).where(workers.c.node == m.node).values(**values))

    def cluster_heartbeat(self, m: Member, lane_rows: Sequence[dict[str, Any]] = ()) -> None:
        """The worker's heartbeat and its lanes' states in ONE transaction (the batched lane flush)."""
        with self.write() as conn:
            now = db_now(conn)
            conn.execute(update(workers).where(workers.c.node == m.node, workers.c.holder == m.holder)
                         .values(heartbeat_at=now, state=RUNNING))
            lane_now = utcnow()   # lanes keep this worker's clock, as without cluster mode (lane_heartbeats)
            for r in lane_rows:
                self._upsert_lane(conn, r["name"], lane_now, state=r["state"], reason=r.get("reason"),
                                  fn_serial=r.get("fn_serial"), last_fd=r.get("last_fd"),
                                  shift_open=r.get("shift_open"))

    def leave_cluster(self, m: Member) -> None:
        """A clean stop: this node is stopped, not down."""
        with self.write() as conn:
            conn.execute(update(workers).where(workers.c.node == m.node, workers.c.holder == m.holder)
                         .values(state=STOPPED, heartbeat_at=db_now(conn)))

    def cluster_view(self) -> tuple[dt.datetime, list[dict[str, Any]]]:
        """(the server's now, every worker row with its registers decoded), for ``status``."""
        with self.read() as conn:
            now = db_now(conn)
            rows = [dict(r._mapping) for r in conn.execute(select(workers).order_by(workers.c.node))]
        for r in rows:
            r["registers"] = json.loads(r["registers"] or "[]")
            r["heartbeat_age_s"] = round((now - r["heartbeat_at"]).total_seconds(), 1)
        return now, rows
