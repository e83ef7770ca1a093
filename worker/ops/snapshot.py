"""Take a :class:`~worker.ops.health.Snapshot` from the ledger (one read transaction's worth)."""
from __future__ import annotations

import datetime as dt
import os
import shutil
from typing import Any

from sqlalchemy.engine import make_url

from worker.ledger.records import utcnow
from worker.ledger.store import Ledger
from worker.defaults import HEARTBEAT_STALE_SECONDS
from worker.ops.cluster import DOWN, node_state
from worker.ops.health import LaneView, Snapshot


def ledger_free_bytes(url: str) -> int | None:
    """Free bytes on the file system of an SQLite ledger; None for a server database."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    directory = os.path.dirname(os.path.abspath(parsed.database))
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _lane(row: dict[str, Any]) -> LaneView:
    expires = row.get("fn_expires_on")
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    return LaneView(name=row["name"], state=row["state"], heartbeat_at=row.get("heartbeat_at"),
                    reason=row.get("reason"), paused_since=row.get("paused_since"),
                    fn_serial=row.get("fn_serial"), fn_expires_on=expires, ofd_unsent=row.get("ofd_unsent"),
                    ofd_oldest_at=row.get("ofd_oldest_at"), clock_skew_s=row.get("clock_skew_s"))


def take_snapshot(ledger: Ledger, *, now: dt.datetime | None = None,
                  heartbeat_stale_s: float = HEARTBEAT_STALE_SECONDS) -> Snapshot:
    """Counts, lanes, gaps, free space and (cluster mode) the nodes that are down, as of now."""
    details = ledger.status_details()
    expired = tuple(g["expired_at"] for g in details.get("expired_gaps", ()) if g.get("reason") == "expired")
    return Snapshot(now=now or utcnow(), counts=ledger.counts(), lanes=tuple(_lane(r) for r in details["lanes"]),
                    expired_gaps_at=expired, open_gaps=len(details.get("open_gaps", ())),
                    free_bytes=ledger_free_bytes(ledger.url), nodes_down=_nodes_down(ledger, heartbeat_stale_s))


def _nodes_down(ledger: Ledger, stale_s: float) -> tuple[tuple[str, float], ...]:
    """Cluster nodes whose heartbeat is stale by the ledger server's clock (none without cluster mode)."""
    try:
        now, workers = ledger.cluster_view()
    except Exception:   # a ledger from before the workers table
        return ()
    return tuple((w["node"], w["heartbeat_age_s"]) for w in workers if node_state(w, now, stale_s) == DOWN)
