"""Cluster mode: three worker processes ("hosts") on one PostgreSQL ledger, still exactly once.

Each worker runs as its own cluster node (``cluster.node``: node-a/b/c), so a holder on another node
is taken over only when its lease expires by the server's clock — as across real hosts. Registers:

    node-a: pa (pinned), n1          node-b: pb (pinned), n1, n2          node-c: pc (pinned), n2

n1 and n2 are network registers (listed by two nodes: the non-holder stands by). The scenario, on one
ledger and one shop: SIGSTOP of the worker holding n1 and the ingest lease (the others take both over
and do its unbound payments; SIGCONT'ed, it finds its leases lost and prints nothing more on n1); a
network stall between node-c and PostgreSQL (fault proxy); SIGKILL of node-b (its network registers
move at lease expiry, its pinned one waits for it); node-b restarted. At the end: the invariants of
tests/chaos/invariants.py (0 duplicates, 0 losses) against the registers' journals.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.faultproxy import FaultProxy
from tests.chaos.invariants import check
from tests.chaos.test_fencing import STOP_TIMEOUT_S, add, done, scalar, wait_until
from tests.shop import cli_env, journal, run_cli, write_settings

pytestmark = pytest.mark.chaos

LEASE_TTL_S = 5
NODES = {"node-a": ("pa", "n1"), "node-b": ("pb", "n1", "n2"), "node-c": ("pc", "n2")}
REGISTERS = ("pa", "pb", "pc", "n1", "n2")


class Node:
    """One worker process of the cluster, its stderr in a file (read while it runs)."""

    def __init__(self, name: str, settings: Path) -> None:
        self.name, self.settings = name, settings
        self.log = settings.parent / "stderr.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(self.settings), "run"],
                                     cwd=self.settings.parent, env=cli_env(), stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("a"), text=True)

    def text(self) -> str:
        return self.log.read_text()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def lease(url: str, name: str) -> tuple[str, int]:
    eng = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            row = conn.execute(sa.text("SELECT holder, epoch FROM register_leases WHERE register = :r"),
                               {"r": name}).first()
    finally:
        eng.dispose()
    return (row.holder, row.epoch) if row else ("", 0)


def lease_times(url: str, column: str = "expires_at") -> dict[str, object]:
    eng = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return dict(conn.execute(sa.text(f"SELECT register, {column} FROM register_leases")).all())
    finally:
        eng.dispose()


def held_by(url: str, name: str, node: str) -> bool:
    return f"@{node}:" in lease(url, name)[0]


def settled(url: str, total: int, *, bound_to: tuple[str, ...] = ()) -> bool:
    """Every payment's receipt done, except those left sending on a register of a worker that is away."""
    stuck = 0
    if bound_to:
        names = ", ".join(f"'{r}'" for r in bound_to)
        stuck = scalar(url, f"SELECT COUNT(*) FROM receipts WHERE state = 'sending' AND register IN ({names})")
    return done(url) + max(stuck, 0) >= total


def receipts_on(url: str, register: str, state: str) -> dict[int, str]:
    """{id: tag} of the receipts in *state* on *register*."""
    eng = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as conn:
            return dict(conn.execute(sa.text("SELECT id, tag FROM receipts WHERE state = :s AND register = :r"),
                                     {"s": state, "r": register}).all())
    finally:
        eng.dispose()


def sending_on(url: str, register: str) -> dict[int, str]:
    return receipts_on(url, register, "sending")


def done_tags(log_tail: str, register: str) -> set[str]:
    """Tags of the "receipt done" lines for *register* in a worker's log."""
    return {m.group(1) for ln in log_tail.splitlines() if "receipt done" in ln and f"register={register}" in ln
            for m in [re.search(r"receipt_tag=([^\s\]]+)", ln)] if m}


def test_three_workers_sigstop_stall_sigkill_exactly_once(shop_schema: sa.URL, postgres_url: sa.URL,
                                                          tmp_path: Path) -> None:
    direct = postgres_url.render_as_string(hide_password=False)
    regs = {r: tmp_path / "reg" / r for r in REGISTERS}
    with FaultProxy(postgres_url.host, postgres_url.port) as proxy:
        via_proxy = postgres_url.set(port=proxy.port).render_as_string(hide_password=False)
        nodes: dict[str, Node] = {}
        for name, names in NODES.items():
            d = tmp_path / name
            d.mkdir()
            settings = write_settings(
                d / "settings.yaml", source_url=shop_schema.render_as_string(hide_password=False),
                ledger_url=via_proxy if name == "node-c" else direct,
                registers=[(r, f"emulator://{regs[r]}?latency_ms=10&serial={r.upper():0>8}"
                                + ("&receipt_latency_ms=300" if r == "pa" else "")) for r in names],
                lease={"ttl_s": LEASE_TTL_S}, cluster={"enabled": True, "node": name},
                retry={"device_pause_s": 0.3, "source_backoff_max_s": 1})
            nodes[name] = Node(name, settings)
        a, b, c = nodes["node-a"], nodes["node-b"], nodes["node-c"]
        run_cli(a.settings, "migrate")
        add(shop_schema, 60)
        total = 60
        figures: dict[str, float] = {}
        try:
            # -- start: node-a first (it takes n1 and the ingest lease), then b and c ---------------
            a.start()
            wait_until(lambda: held_by(direct, "n1", "node-a") and held_by(direct, "ingest:shop", "node-a"), 60,
                       "node-a holding n1 and ingest")
            c.start()
            wait_until(lambda: held_by(direct, "n2", "node-c"), 60, "node-c holding n2")
            b.start()
            wait_until(lambda: done(direct) >= total, 90, "first 60 receipts by three workers")
            # node-b's lane for n1 could not get its lease at start: it stands by, the worker runs on.
            # Wait for that lane's own line: another lane's "standing by" (n2, held by node-c) can come first.
            wait_until(lambda: "lease taken: epoch 1" in b.text() and any(
                "standing by" in ln and "@node-a:" in ln and "[register=n1]" in ln for ln in b.text().splitlines()),
                60, "node-b up, its n1 lane standing by for node-a")
            assert b.alive(), b.text()[-3000:]
            wait_until(lambda: json.loads(run_cli(a.settings, "status", "--output", "json").stdout)["cluster"]["live"]
                       == 3, 30, "three live nodes in status")
            status = json.loads(run_cli(a.settings, "status", "--output", "json").stdout)
            cl = status["cluster"]
            assert cl["live"] == 3 and {w["node"] for w in cl["workers"]} == set(NODES), cl
            placement = {r["register"]: r["placement"] for r in cl["registers"]}
            assert placement == {"pa": "pinned", "pb": "pinned", "pc": "pinned", "n1": "network",
                                 "n2": "network"}, placement
            assert "@node-a:" in cl["ingest"]["holder"]
            printed = {r: len(list((regs[r] / "journal.jsonl").read_text().splitlines())) for r in ("pb", "pc")}

            # -- SIGSTOP node-a: b takes n1, b or c the ingest; unbound payments go on ---------------
            _, n1_epoch = lease(direct, "n1")
            _, ingest_epoch = lease(direct, "ingest:shop")
            add(shop_schema, 40)
            total += 40
            # freeze node-a while its slow pinned register pa has a receipt bound by intent (sending)
            wait_until(lambda: scalar(direct, "SELECT COUNT(*) FROM receipts WHERE state = 'sending' "
                                              "AND register = 'pa'") > 0, 30, "a receipt sending on pa")
            a.signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            bound = sending_on(direct, "pa")
            wait_until(lambda: lease(direct, "ingest:shop")[1] > ingest_epoch, 60, "ingest taken over")
            figures["ingest_takeover_s"] = round(time.monotonic() - stopped_at, 1)
            wait_until(lambda: settled(direct, total, bound_to=("pa", "n1")), 90, "payments done without node-a")
            wait_until(lambda: held_by(direct, "n1", "node-b") and lease(direct, "n1")[1] > n1_epoch, 60,
                       "n1 taken over by node-b")
            figures["n1_takeover_s"] = round(time.monotonic() - stopped_at, 1)
            # a receipt bound to pa by its intent stays with pa while node-a is frozen: nobody else takes it
            assert bound and set(bound) <= set(sending_on(direct, "pa")), (bound, sending_on(direct, "pa"))
            mark = len(a.text())
            done_before_cont = set(receipts_on(direct, "n1", "done").values())
            a.signal(signal.SIGCONT)
            wait_until(lambda: "ingest lease lost" in a.text()[mark:]
                       and ("lease lost" in a.text()[mark:].replace("ingest lease lost", "")
                            or "standing by" in a.text()[mark:]), 60, "node-a finding its leases lost")
            wait_until(lambda: done(direct) >= total, 90, "node-a's pinned receipts after SIGCONT")
            after_cont = a.text()[mark:]
            pa_tags = {d.get("tag") for d in journal(regs["pa"])}
            assert set(bound.values()) <= pa_tags, (bound, "settled on pa by node-a after SIGCONT")
            # not one receipt more on n1. A "receipt done" line after SIGCONT can be the log of an outcome
            # node-a committed (epoch still valid) just before SIGSTOP froze it between that commit and its
            # log call (seen once in CI): that receipt is done in the ledger before SIGCONT. Any other tag
            # would be a receipt node-a recorded on n1 with its lease lost.
            late = done_tags(after_cont, "n1") - done_before_cont
            assert not late, (late, after_cont[-3000:])
            for r in ("pb", "pc"):   # the others printed while node-a was frozen
                assert len((regs[r] / "journal.jsonl").read_text().splitlines()) > printed[r]

            # -- a network stall between node-c and PostgreSQL: n2 moves to node-b -------------------
            _, n2_epoch = lease(direct, "n2")
            assert held_by(direct, "n2", "node-c")
            proxy.stall()
            add(shop_schema, 30)
            total += 30
            wait_until(lambda: settled(direct, total, bound_to=("pc", "n2")), 90, "payments done around the stall")
            wait_until(lambda: held_by(direct, "n2", "node-b") and lease(direct, "n2")[1] > n2_epoch, 60,
                       "n2 taken over from the stalled node-c")
            mark_c = len(c.text())
            proxy.restore()
            wait_until(lambda: done(direct) >= total, 120, "node-c back, its pinned receipts done")
            wait_until(lambda: "lease lost" in c.text()[mark_c:] or "standing by" in c.text()[mark_c:], 90,
                       "node-c finding n2 lost")
            assert not done_tags(c.text()[mark_c:], "n2"), c.text()[-3000:]   # not one receipt more on n2

            # -- SIGKILL node-b ("another host"): its network registers move at lease expiry -------
            wait_until(lambda: held_by(direct, "n1", "node-b") and held_by(direct, "n2", "node-b"), 30,
                       "node-b holding n1 and n2")
            epochs = {r: lease(direct, r)[1] for r in ("n1", "n2")}
            expiry = lease_times(direct)   # node-b's leases: when each expires by the server's clock
            b.signal(signal.SIGKILL)
            killed_at = time.monotonic()
            b.proc.wait(timeout=30)
            add(shop_schema, 30)
            total += 30
            wait_until(lambda: all(lease(direct, r)[1] > epochs[r] for r in ("n1", "n2")), 60, "n1, n2 taken over")
            figures["takeover_after_sigkill_s"] = round(time.monotonic() - killed_at, 1)
            assert held_by(direct, "n1", "node-a") and held_by(direct, "n2", "node-c")
            taken = lease_times(direct, "acquired_at")
            for r in ("n1", "n2"):   # another node: only the expiry frees a lease (no pid check across nodes)
                assert taken[r] >= expiry[r], (r, taken[r], expiry[r])
            wait_until(lambda: settled(direct, total, bound_to=("pb",)), 90, "payments done without node-b")
            assert a.alive() and c.alive()
            # node-b comes back on its host: its dead holder is recognised at once, pb's receipts finish
            b.start()
            wait_until(lambda: done(direct) >= total, 90, "node-b back")
            status = json.loads(run_cli(a.settings, "status", "--output", "json").stdout)
            assert status["cluster"]["live"] == 3, status["cluster"]
        except (AssertionError, subprocess.TimeoutExpired):
            for n in nodes.values():
                print(f"--- {n.name}:\n{n.text()[-4000:] if n.log.exists() else ''}")
            raise
        finally:
            proxy.restore()
            for n in nodes.values():
                n.stop()
    report = check(shop_schema, direct, regs.values())
    print(json.dumps({**figures, **report.summary()}))
    if not report.ok:   # the evidence: where each duplicated tag was printed, and every node's log
        for r, path in regs.items():
            print(r, [(d["fd"], d.get("tag")) for d in journal(path) if d.get("tag") in report.duplicates])
        for n in nodes.values():
            print(f"--- {n.name}:\n{n.text()[-20000:]}")
    assert report.ok and report.done == total and not report.duplicates and not report.lost, report.summary()
    for n in nodes.values():
        assert "Traceback" not in n.text(), n.text()[-3000:]
