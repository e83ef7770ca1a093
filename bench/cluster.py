"""The cluster benchmark: several `kkt-worker run` processes on ONE PostgreSQL ledger (docs/cluster.md).

    .venv/bin/python -m bench.cluster                 # throughput 1-3 workers, coordination cost, takeover, idle
    .venv/bin/python -m bench.cluster --quick         # smaller backlog, lease TTL 10 s for the takeover figure
    .venv/bin/python -m bench.cluster --only takeover --ttl 60

Everything is real except the registers: a scratch MariaDB shop (``--admin-url``), a scratch PostgreSQL
ledger database (``--pg-admin-url``, superuser: the WAL figures read ``pg_walinspect`` and hold a
replication slot for the measured window, dropped after it), the worker's own
CLI in subprocesses, each worker its own cluster node (``cluster.node``) with its own emulated
registers (``receipt_latency_ms`` per receipt, a printing register).

Figures (one JSON object):

* ``throughput``: 1, 2, 3 cluster workers × ``--registers`` registers each, on one backlog; receipts/s
  from the first intent to the last outcome (ledger times), against the ideal ``workers × registers ×
  1000 / receipt_ms``; the baseline is one worker without cluster mode. Each run ends with the
  exactly-once invariants (``"exactly_once": true``).
* ``coordination``: per receipt, the ledger's write transactions, row writes (incl. row locks) and WAL
  bytes (only WAL records of the ledger database and of their transactions, from ``pg_walinspect``) —
  cluster runs against the single worker: the cost of the cluster per receipt.
* ``takeover``: the worker holding a network register and the ingest lease is SIGKILLed ("another
  host": its node name differs, so only the lease's expiry frees it); seconds until the standby holds
  the register's lease, the ingest lease, and until a payment made after the kill is printed.
* ``idle``: three idle cluster workers × ``--registers`` lanes: WAL bytes/s and transactions/s each
  writes to the ledger (budget ≤ 1 KB/s per worker).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.harness import PG_ADMIN_URL, Ledgers, fill_shop
from bench.timeline import done_span
from tests.chaos.campaign import ADMIN_URL, create_shop, drop_shop
from tests.chaos.invariants import check
from tests.shop import cli_env, run_cli, write_settings
from worker.defaults import INGEST_LEASE, LEASE_TTL_SECONDS

FIGURES = ("throughput", "coordination", "takeover", "idle")


@dataclass
class Cluster:
    """Settings of N workers (nodes) on one ledger, each with its own registers (+ shared ones)."""

    ledger_url: str
    settings: list[Path]
    regs: list[Path]


def make_cluster(work: Path, name: str, shop: sa.URL, ledger_url: str, workers: int, registers: int, *,
                 receipt_ms: int, cluster: bool = True, shared: int = 0, ttl_s: float = LEASE_TTL_SECONDS,
                 poll_s: float = 0.2) -> Cluster:
    """*workers* settings files; worker i has registers w{i}r{j}; *shared* network registers are in every one."""
    d = work / name
    d.mkdir()
    regs: list[Path] = []
    shared_urls = []
    for j in range(shared):
        r = d / f"net{j}"
        regs.append(r)
        shared_urls.append((f"net{j}", f"emulator://{r}?serial=NET{j:05d}&fsync=0&receipt_latency_ms={receipt_ms}"))
    paths = []
    for i in range(workers):
        urls = []
        for j in range(registers):
            r = d / f"w{i}r{j}"
            regs.append(r)
            urls.append((f"w{i}r{j}", f"emulator://{r}?serial=W{i}R{j:05d}&fsync=0&receipt_latency_ms={receipt_ms}"))
        wd = d / f"node{i}"
        wd.mkdir()
        sections: dict[str, Any] = {"log": {"level": "WARNING"}, "lease": {"ttl_s": ttl_s},
                                    "source": {"poll_interval_s": poll_s, "batch_size": 500},
                                    "retry": {"base_delay_s": 1, "max_delay_s": 5, "device_pause_s": 5}}
        if cluster:
            sections["cluster"] = {"enabled": True, "node": f"node{i}"}
        paths.append(write_settings(wd / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                                    ledger_url=ledger_url, registers=urls + shared_urls, **sections))
    run_cli(paths[0], "migrate")
    return Cluster(ledger_url, paths, regs)


def start(settings: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "worker", "-c", str(settings), "run", *args],
                            cwd=settings.parent, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=(settings.parent / "stderr.log").open("a"), text=True)


def scalar(url: str, sql: str, **params: Any) -> Any:
    eng = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with eng.connect() as c:
            return c.execute(sa.text(sql), params).scalar()
    finally:
        eng.dispose()


# -- ledger cost: transactions, rows and WAL bytes of the ledger database only ---------------------------

class LedgerMeter:
    """What the workers write to one PostgreSQL database between :meth:`begin` and :meth:`end`, read from
    the WAL itself (``pg_walinspect``): the records touching this database's relations and the records of
    their transactions (commits). Exact for this database even while other databases on the server work."""

    def __init__(self, url: str) -> None:
        self.url = url
        with sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool).connect() as c:
            c.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            self.oid = c.exec_driver_sql("SELECT oid FROM pg_database WHERE datname = current_database()").scalar()

    def _lsn(self) -> str:
        return str(scalar(self.url, "SELECT pg_current_wal_flush_lsn()::text"))

    def begin(self) -> None:
        # a replication slot keeps the server from recycling the window's WAL segments (a long run writes
        # more than max_wal_size); it is dropped in end()
        self.slot = f"kkt_bench_{os.getpid()}_{int(time.time() * 1000) % 10**9}"
        first(self.url, f"SELECT pg_create_physical_replication_slot('{self.slot}', true)")
        self.start = self._lsn()

    def end(self) -> dict[str, int]:
        try:
            return self._measure()
        finally:
            self.close()

    def close(self) -> None:
        """Drop the slot (idempotent): a forgotten slot would keep the server's WAL forever."""
        slot, self.slot = getattr(self, "slot", None), None
        if slot:
            first(self.url, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                            f"WHERE slot_name = '{slot}'")

    def _measure(self) -> dict[str, int]:
        lsn1 = self._lsn()
        row = first(self.url, f"""
            WITH r AS (SELECT xid, record_length, resource_manager, record_type, block_ref
                       FROM pg_get_wal_records_info('{self.start}', '{lsn1}')),
                 mine AS (SELECT * FROM r WHERE block_ref LIKE '%/{self.oid}/%'),
                 xids AS (SELECT DISTINCT xid FROM mine WHERE xid <> 0)
            SELECT (SELECT COALESCE(SUM(record_length), 0) FROM r
                    WHERE block_ref LIKE '%/{self.oid}/%' OR xid IN (SELECT xid FROM xids)),
                   (SELECT COUNT(*) FROM xids),
                   (SELECT COUNT(*) FROM mine WHERE resource_manager IN ('Heap', 'Heap2')
                      AND split_part(record_type, ' ', 1) IN ('INSERT', 'UPDATE', 'HOT_UPDATE', 'DELETE',
                                                                 'MULTI_INSERT', 'LOCK'))""")
        return {"wal_bytes": int(row[0]), "write_transactions": int(row[1]), "row_writes": int(row[2])}


def first(url: str, sql: str) -> Any:
    eng = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            return c.execute(sa.text(sql)).first()
    finally:
        eng.dispose()


# -- figures -----------------------------------------------------------------------------------------------

def run_backlog(work: Path, name: str, shop: sa.URL, led: Ledgers, workers: int, registers: int, receipt_ms: int,
                payments: int, *, cluster: bool = True) -> dict[str, Any]:
    """Fill the shop, start *workers* with --burst at once, wait for all; figures from the ledger."""
    ledger_url = led.new(name)
    c = make_cluster(work, name, shop, ledger_url, workers, registers, receipt_ms=receipt_ms, cluster=cluster)
    fill_shop(shop, payments)
    meter = LedgerMeter(ledger_url)
    meter.begin()
    try:
        t0 = time.perf_counter()
        procs = [start(s, "--burst") for s in c.settings]
        codes = [p.wait(timeout=1800) for p in procs]
        wall = time.perf_counter() - t0
        cost = meter.end()
    finally:
        meter.close()
    done, span, per = done_span(ledger_url)
    rep = check(shop, ledger_url, c.regs)
    ideal = workers * registers * 1000 / receipt_ms
    return {"workers": workers, "cluster_mode": cluster, "registers_per_worker": registers,
            "receipt_ms": receipt_ms, "payments": payments, "exit_codes": codes,
            "receipts_per_s": round(done / span, 1) if span else 0.0, "ideal_receipts_per_s": ideal,
            "efficiency": round(done / span / ideal, 3) if span else 0.0, "wall_s": round(wall, 1),
            "registers_used": len(per), "exactly_once": rep.ok, "done": rep.done,
            "per_receipt": {k: round(v / done, 2) if done else None for k, v in cost.items()}}


def fig_throughput(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, workers, cluster in (("single_no_cluster", 1, False), ("cluster_1", 1, True),
                                    ("cluster_2", 2, True), ("cluster_3", 3, True)):
        shop = create_shop(a.admin_url)
        led = Ledgers("postgresql", a.pg_admin_url, work)
        try:
            out[label] = run_backlog(work, label, shop, led, workers, a.registers, a.receipt_ms,
                                     a.payments_per_worker * workers, cluster=cluster)
        finally:
            led.drop()
            drop_shop(a.admin_url, shop)
        print(json.dumps({label: out[label]}), file=sys.stderr)
    return out


def coordination(tput: dict[str, Any]) -> dict[str, Any]:
    """Per-receipt ledger cost of each cluster run against the single worker without cluster mode."""
    base = tput["single_no_cluster"]["per_receipt"]
    out: dict[str, Any] = {"baseline_single_worker_per_receipt": base}
    for label in ("cluster_1", "cluster_2", "cluster_3"):
        if label in tput:
            per = tput[label]["per_receipt"]
            out[label] = {"per_receipt": per,
                          "extra_vs_single": {k: round(per[k] - base[k], 2) for k in base if per.get(k) is not None}}
    return out


def fig_takeover(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    """node0 holds the network register net0 and the ingest lease; SIGKILL; node1 (only net0) takes over."""
    shop = create_shop(a.admin_url)
    led = Ledgers("postgresql", a.pg_admin_url, work)
    procs: list[subprocess.Popen[str]] = []
    try:
        url = led.new("takeover")
        c = make_cluster(work, "takeover", shop, url, 2, 0, receipt_ms=50, shared=1, ttl_s=a.ttl)
        procs.append(start(c.settings[0]))
        wait(lambda: "@node0:" in (scalar(url, "SELECT holder FROM register_leases WHERE register = 'net0'") or "")
             and "@node0:" in (scalar(url, "SELECT holder FROM register_leases WHERE register = :r", r=INGEST_LEASE)
                               or ""), 60)
        procs.append(start(c.settings[1]))
        fill_shop(shop, 20)
        wait(lambda: done_span(url)[0] >= 20, 120)
        time.sleep(2)   # node1's lane has surely stood by once
        e_reg = scalar(url, "SELECT epoch FROM register_leases WHERE register = 'net0'")
        e_ing = scalar(url, "SELECT epoch FROM register_leases WHERE register = :r", r=INGEST_LEASE)
        procs[0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        procs[0].wait(10)
        fill_shop(shop, 1)
        wait(lambda: scalar(url, "SELECT epoch FROM register_leases WHERE register = 'net0'") > e_reg, a.ttl * 3 + 60)
        t_reg = time.monotonic() - killed
        wait(lambda: scalar(url, "SELECT epoch FROM register_leases WHERE register = :r", r=INGEST_LEASE) > e_ing,
             a.ttl * 3 + 60)
        t_ing = time.monotonic() - killed
        wait(lambda: done_span(url)[0] >= 21, a.ttl * 3 + 60)
        t_done = time.monotonic() - killed
        rep = check(shop, url, c.regs)
        return {"lease_ttl_s": a.ttl, "register_lease_taken_s": round(t_reg, 1), "ingest_lease_taken_s": round(t_ing, 1),
                "payment_after_kill_printed_s": round(t_done, 1), "exactly_once": rep.ok, "done": rep.done,
                "note": "another node: only the lease's expiry (server clock) frees it; the standby looks every "
                        "min(retry.device_pause_s, ttl/3) s"}
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(60)
        led.drop()
        drop_shop(a.admin_url, shop)


def fig_idle(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Three idle cluster workers with --registers lanes each, the default poll interval (1 s)."""
    shop = create_shop(a.admin_url)
    led = Ledgers("postgresql", a.pg_admin_url, work)
    procs: list[subprocess.Popen[str]] = []
    try:
        url = led.new("idle")
        c = make_cluster(work, "idle", shop, url, 3, a.registers, receipt_ms=0, poll_s=1.0, ttl_s=a.ttl)
        procs = [start(s) for s in c.settings]
        time.sleep(max(8.0, a.ttl / 2 + 3))   # started, leases taken, first renewals
        meter = LedgerMeter(url)
        meter.begin()
        try:
            time.sleep(a.idle_s)
            cost = meter.end()
        finally:
            meter.close()
        return {"workers": 3, "lanes_per_worker": a.registers, "seconds": a.idle_s, "lease_ttl_s": a.ttl,
                "wal_bytes_per_s_per_worker": round(cost["wal_bytes"] / a.idle_s / 3, 1),
                "write_transactions_per_s_per_worker": round(cost["write_transactions"] / a.idle_s / 3, 2),
                "row_writes_per_s_per_worker": round(cost["row_writes"] / a.idle_s / 3, 2),
                "target": {"wal_bytes_per_s_per_worker": 1024}}
    finally:
        for p in procs:
            p.terminate()
            p.wait(60)
        led.drop()
        drop_shop(a.admin_url, shop)


def wait(pred: Any, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError(f"not reached within {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller backlog, lease TTL 10 s, 20 s idle window")
    ap.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated: {', '.join(FIGURES)}")
    ap.add_argument("--registers", type=int, default=4, help="emulated registers per worker")
    ap.add_argument("--receipt-ms", type=int, default=100, help="each register's time per receipt")
    ap.add_argument("--payments-per-worker", type=int, default=None)
    ap.add_argument("--ttl", type=float, default=None, help="lease TTL for takeover and idle (default: the worker's)")
    ap.add_argument("--idle-s", type=float, default=None)
    ap.add_argument("--admin-url", default=ADMIN_URL, help="MariaDB URL allowed to create scratch databases")
    ap.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="PostgreSQL superuser URL (creates databases)")
    a = ap.parse_args()
    a.payments_per_worker = a.payments_per_worker or (300 if a.quick else 1200)
    a.ttl = a.ttl or (10.0 if a.quick else LEASE_TTL_SECONDS)
    a.idle_s = a.idle_s or (20.0 if a.quick else 60.0)
    wanted = [f.strip() for f in a.only.split(",") if f.strip()]
    out: dict[str, Any] = {"cores": os.cpu_count(), "quick": a.quick}
    with tempfile.TemporaryDirectory(prefix="kkt-bench-cluster-") as tmp:
        work = Path(tmp)
        if "throughput" in wanted or "coordination" in wanted:
            out["throughput"] = fig_throughput(a, work)
            out["coordination"] = coordination(out["throughput"])
        if "takeover" in wanted:
            out["takeover"] = fig_takeover(a, work)
        if "idle" in wanted:
            out["idle"] = fig_idle(a, work)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
