"""What every bench.pool figure is built on: a scratch MariaDB shop, scratch ledgers, a settings file for
*n* emulated registers, and one ``run --burst`` of the real worker measured from outside (wall, its own CPU,
its peak RSS), ending with the exactly-once invariants checked against the registers' journals.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.procfs import vm_hwm_kb
from tests.chaos.campaign import create_pg_ledger, drop_pg_ledger
from tests.chaos.invariants import check
from tests.shop import children, cli_env, run_cli, write_settings

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

#: set by ``bench.pool --profile DIR``: every worker run is sampled by ``py-spy record --pid`` into DIR
#: (raw collapsed stacks, GIL holder only, one file per run). Attached from outside, so the run's CPU
#: and RSS figures are still the worker's own, but py-spy's sampling (100 Hz, nonblocking) costs the
#: machine a little CPU: compare profiled runs with profiled runs.
PROFILE_DIR: Path | None = None
#: set by ``bench.pool --ingest-in-thread``: every worker polls in its own process
#: (``source.ingest_process: false``)
INGEST_IN_THREAD = False


# -- the shop ---------------------------------------------------------------------------------------

def fill_shop(shop: sa.URL, n: int, *, items: bool = True) -> tuple[int, int]:
    """Append *n* paid payments (one item each) in bulk; returns (first id, last id)."""
    eng = sa.create_engine(shop, poolclass=sa.NullPool)
    with eng.begin() as c:
        before = c.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM payments").scalar()
        done = 0
        while done < n:   # the sequence engine makes a million rows in seconds
            step = min(200_000, n - done)
            c.exec_driver_sql(
                "INSERT INTO payments (kind, order_ref, amount, customer_email, paid_at) "
                f"SELECT 'sale', CONCAT('ORD', seq), 150.50, 'buyer@example.ru', '2026-11-20 12:00:00' "
                f"FROM seq_1_to_{step}")
            done += step
        last = c.exec_driver_sql("SELECT MAX(id) FROM payments").scalar()
        if items:
            c.exec_driver_sql(
                "INSERT INTO payment_items (payment_id, line_no, name, price, quantity, amount, vat) "
                "SELECT id, 1, 'Товар', 150.50, 1.000, 150.50, 'vat22' FROM payments WHERE id > %s", (before,))
    eng.dispose()
    return int(before) + 1, int(last)


@dataclass
class Ledgers:
    """Scratch ledgers of one kind (sqlite files or PostgreSQL databases)."""

    kind: str
    pg_admin: str
    work: Path

    def __post_init__(self) -> None:
        self.made: list[str] = []

    def new(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.work / (name + '.db')}"
        url = create_pg_ledger(self.pg_admin, prefix=f"kkt_bench_{name}")
        self.made.append(url)
        return url

    def drop(self) -> None:
        for url in self.made:
            drop_pg_ledger(self.pg_admin, url)


# -- running the worker --------------------------------------------------------------------------------

@dataclass
class Setup:
    """A settings file with *n* emulated registers."""

    settings: Path
    ledger_url: str
    regs: list[Path]


def setup(work: Path, name: str, shop: sa.URL, ledger_url: str, registers: int, *, receipt_ms: int = 0,
          jitter_ms: int = 0, faults: dict[int, str] | None = None, served: list[str] | None = None,
          **sections: Any) -> Setup:
    """Settings for *registers* in-process emulated registers, or for the wire registers *served*
    (their URLs, state in ``work/name/reg<i>``: see :func:`start_hosts`). *jitter_ms*: each receipt's
    time varies by up to ± this much (the emulator's ``receipt_jitter_ms``, seeded per register)."""
    d = work / name
    d.mkdir(exist_ok=True)
    regs = [d / f"reg{i}" for i in range(registers)]
    urls = []
    for i, r in enumerate(regs):
        if served:
            urls.append((f"kkt{i:03d}", served[i]))
            continue
        q = f"serial=EMU{i:05d}&fsync=0&receipt_latency_ms={receipt_ms}"
        if jitter_ms:
            q += f"&receipt_jitter_ms={jitter_ms}&seed={i}"
        if faults and i in faults:
            q += "&" + faults[i]
        urls.append((f"kkt{i:03d}", f"emulator://{r}?{q}"))
    sections.setdefault("log", {"level": "WARNING"})
    if INGEST_IN_THREAD:   # --ingest-in-thread: the pollers in the worker's own process (for comparison)
        sections["source"] = {**sections.get("source", {}), "ingest_process": False}
    settings = write_settings(d / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                              ledger_url=ledger_url, registers=urls, **sections)
    run_cli(settings, "migrate")
    return Setup(settings, ledger_url, regs)


def burst(s: Setup, timeout: float = 3600) -> dict[str, Any]:
    """``run --burst``: wall time, CPU seconds (``os.wait4``: this worker's rusage, which includes its ingest
    process — the worker reaps it — and not the benchmark's other children) and peak RSS (VmHWM, read while it
    runs) of the worker process and, separately, of its ingest process."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(s.settings), "run", "--burst"],
                                cwd=s.settings.parent, env=cli_env(), stdout=subprocess.DEVNULL, stderr=err, text=True)
        spy = _profile(proc.pid, s.settings.parent.name)
        deadline = t0 + timeout
        peak_kb = ingest_kb = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            ingest_kb = max([ingest_kb, *(vm_hwm_kb(c) for c in children(proc.pid))])
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        if spy is not None:
            spy.wait(timeout=60)   # py-spy writes its file when the process it samples exits
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"worker exited {proc.returncode}: {err.read()[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mb": peak_kb / 1024,
            "ingest_maxrss_mb": ingest_kb / 1024}


def _profile(pid: int, name: str) -> subprocess.Popen | None:
    """``py-spy record`` attached to *pid* when :data:`PROFILE_DIR` is set (``<name>-<n>.txt``)."""
    if PROFILE_DIR is None:
        return None
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    n = len(list(PROFILE_DIR.glob(f"{name}-*.txt")))
    out = PROFILE_DIR / f"{name}-{n}.txt"
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy if spy.exists() else "py-spy"), "record", "--pid", str(pid),
                             "--format", "raw", "--rate", "100", "--gil", "--nonblocking", "--threads",
                             "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def invariants(shop: sa.URL, s: Setup) -> dict[str, Any]:
    rep = check(shop, s.ledger_url, s.regs)
    return {"exactly_once": rep.ok, "done": rep.done, "states": rep.states}
