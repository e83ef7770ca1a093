"""The cluster as ``status`` shows it: workers live or down, who holds each register and the ingest.

Pure over the ``workers`` rows and the leases (both read with the ledger server's clock, so no
worker's clock decides who is down). A worker is

* ``live``    — state running and a heartbeat within ``health.heartbeat_stale_s``;
* ``down``    — state running but the heartbeat is stale (killed, frozen, cut off from the ledger);
* ``stopped`` — it stopped cleanly.

A register named in one worker's settings is *pinned* to that node; named in several, it is a
*network* register whose lease moves to a standby when its holder dies (docs/cluster.md).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from worker.defaults import INGEST_LEASE

LIVE, DOWN, STOPPED = "live", "down", "stopped"


def node_state(row: dict[str, Any], now: dt.datetime, stale_s: float) -> str:
    """live, down or stopped (see the module header)."""
    if row["state"] == "stopped":
        return STOPPED
    return LIVE if (now - row["heartbeat_at"]).total_seconds() <= stale_s else DOWN


def _lease(lease: dict[str, Any] | None) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {"holder": lease["holder"], "epoch": lease["epoch"], "expires_at": lease["expires_at"],
            "live": lease["live"]}


def cluster_view(now: dt.datetime, workers: Sequence[dict[str, Any]], leases: Sequence[dict[str, Any]],
                 stale_s: float) -> dict[str, Any]:
    """The cluster for ``status --output json`` (and the text lines): workers, ingest, registers."""
    nodes = [{**w, "status": node_state(w, now, stale_s)} for w in workers]
    by_name = {lease["register"]: lease for lease in leases}
    listed: dict[str, list[str]] = {}
    for w in workers:
        for reg in w["registers"]:
            listed.setdefault(reg, []).append(w["node"])
    registers = []
    for reg in sorted(set(listed) | {name for name in by_name if name != INGEST_LEASE}):
        where = listed.get(reg, [])
        registers.append({"register": reg, "nodes": where,
                          "placement": "pinned" if len(where) == 1 else "network" if where else "unlisted",
                          "lease": _lease(by_name.get(reg))})
    return {"now": now, "heartbeat_stale_s": stale_s, "workers": nodes,
            "live": sum(1 for n in nodes if n["status"] == LIVE),
            "ingest": _lease(by_name.get(INGEST_LEASE)), "registers": registers}


def cluster_lines(view: dict[str, Any]) -> list[str]:
    """``status`` text lines for *view*."""
    out = [f"cluster: {len(view['workers'])} node(s), {view['live']} live"]
    for w in view["workers"]:
        state = {LIVE: "live", DOWN: "DOWN", STOPPED: "stopped"}[w["status"]]
        out.append(f"  node {w['node']}: {state} (heartbeat {w['heartbeat_age_s']:.0f} s ago; {w['holder']} on "
                   f"{w['host']}, v{w['version']}); registers {', '.join(w['registers']) or 'none'}")
    ing = view["ingest"]
    out.append("  ingest: " + ("nobody yet" if ing is None else
                               f"{ing['holder']} epoch {ing['epoch']} {'live' if ing['live'] else 'EXPIRED'} "
                               f"until {ing['expires_at']:%H:%M:%S} UTC"))
    for r in view["registers"]:
        lease = r["lease"]
        held = "no lease yet" if lease is None else (f"{lease['holder']} epoch {lease['epoch']} "
                                                     f"{'live' if lease['live'] else 'EXPIRED'} until "
                                                     f"{lease['expires_at']:%H:%M:%S} UTC")
        where = {"pinned": f"pinned to {r['nodes'][0]}" if r["nodes"] else "",
                 "network": f"network ({', '.join(r['nodes'])})", "unlisted": "in no live settings"}[r["placement"]]
        out.append(f"  register {r['register']}: {where}; {held}")
    return out
