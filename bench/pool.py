"""The register pool benchmark: throughput, pool efficiency, the farm, latency, idle cost, memory, source scale.

    .venv/bin/python -m bench.pool                 # the full run (tens of minutes on 2 cores)
    .venv/bin/python -m bench.pool --quick         # smaller sizes, same figures (a few minutes)
    .venv/bin/python -m bench.pool --quick --only throughput,pool

Everything is real except the registers: a scratch MariaDB shop database (``--admin-url``), the
worker's own CLI (``python -m worker run``) in a subprocess, SQLite (WAL, synchronous=FULL) and
PostgreSQL (``--pg-admin-url``) ledgers with durable commits, and in-process emulated registers whose
latency is set per receipt (``receipt_latency_ms``; the register's own journal is not fsync'ed — it is
the device, not the worker; ``farm_out_of_process`` puts them in other processes behind the Shtrih-M
wire protocol, see bench/farm_hosts.py). Each run ends with the exactly-once invariants
(``tests/chaos/invariants.py``) checked against the registers' journals: ``"exactly_once": true``.

Prints ONE JSON object (see docs/pool.md, "Reading the benchmark"): ``cores`` and every figure with the
target it is compared to. Timing-based figures are noisy on a shared 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from bench.reference import raw_pg_loop, raw_sqlite_loop, register_cpu_ms_per_receipt
from tests.chaos.campaign import ADMIN_URL, create_shop, drop_shop
from tests.chaos.invariants import check
from tests.shop import cli_env, run_cli, write_settings

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: processes hosting the out-of-process farm's registers (50 Shtrih-M emulators each)
FARM_HOSTS = 4
IDLE_SETTLE_S = 5.0          # let a fresh worker finish starting before the idle window opens


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
        db = f"kkt_bench_{name}_{random.randrange(1 << 30):x}"
        with sa.create_engine(self.pg_admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool).connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{db}"')
        self.made.append(db)
        return sa.make_url(self.pg_admin).set(database=db).render_as_string(hide_password=False)

    def drop(self) -> None:
        if not self.made:
            return
        with sa.create_engine(self.pg_admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool).connect() as c:
            for db in self.made:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


# -- running the worker --------------------------------------------------------------------------------

@dataclass
class Setup:
    """A settings file with *n* emulated registers."""

    settings: Path
    ledger_url: str
    regs: list[Path]


def setup(work: Path, name: str, shop: sa.URL, ledger_url: str, registers: int, *, receipt_ms: int = 0,
          faults: dict[int, str] | None = None, served: list[str] | None = None, **sections: Any) -> Setup:
    """Settings for *registers* in-process emulated registers, or for the wire registers *served*
    (their URLs, state in ``work/name/reg<i>``: see :func:`start_hosts`)."""
    d = work / name
    d.mkdir(exist_ok=True)
    regs = [d / f"reg{i}" for i in range(registers)]
    urls = []
    for i, r in enumerate(regs):
        if served:
            urls.append((f"kkt{i:03d}", served[i]))
            continue
        q = f"serial=EMU{i:05d}&fsync=0&receipt_latency_ms={receipt_ms}"
        if faults and i in faults:
            q += "&" + faults[i]
        urls.append((f"kkt{i:03d}", f"emulator://{r}?{q}"))
    sections.setdefault("log", {"level": "WARNING"})
    settings = write_settings(d / "settings.yaml", source_url=shop.render_as_string(hide_password=False),
                              ledger_url=ledger_url, registers=urls, **sections)
    run_cli(settings, "migrate")
    return Setup(settings, ledger_url, regs)


def burst(s: Setup, timeout: float = 3600) -> dict[str, Any]:
    """``run --burst``: wall time, CPU seconds (``os.wait4``: this process's own rusage, not every child's)
    and peak RSS (its VmHWM, read while it runs) of THIS worker process."""
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(s.settings), "run", "--burst"],
                                cwd=s.settings.parent, env=cli_env(), stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = t0 + timeout
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"worker exited {proc.returncode}: {err.read()[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mb": peak_kb / 1024}


def _vm_hwm_kb(pid: int) -> int:
    """A running process's peak RSS (VmHWM) in kB, 0 if unreadable. Not ru_maxrss: on Linux that also
    counts the benchmark process's own RSS copied into the child before its exec."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def done_span(ledger_url: str) -> tuple[int, float, dict[str, tuple[int, float]]]:
    """(done receipts, seconds from the first intent to the last outcome, per register (count, span))."""
    from worker.ledger.schema import receipts

    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as c:   # typed columns: SQLite keeps datetimes as text
        rows = c.execute(sa.select(receipts.c.register, receipts.c.intent_at, receipts.c.updated_at)
                         .where(receipts.c.state == "done")).all()
    eng.dispose()
    if not rows:
        return 0, 0.0, {}
    span = (max(r[2] for r in rows) - min(r[1] for r in rows)).total_seconds()
    per: dict[str, list] = {}
    for r in rows:
        per.setdefault(r[0], []).append(r)
    per_reg = {k: (len(v), (max(x[2] for x in v) - min(x[1] for x in v)).total_seconds()) for k, v in per.items()}
    return len(rows), span, per_reg


def lane_starts(ledger_url: str) -> dict[str, float]:
    """When each register's first intent came, relative to the first register's: a pool whose lanes
    start one after another loses that ramp from its aggregate efficiency (and the tail at the end)."""
    from worker.ledger.schema import receipts

    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as c:
        rows = c.execute(sa.select(receipts.c.register, sa.func.min(receipts.c.intent_at),
                                   sa.func.max(receipts.c.updated_at))
                         .where(receipts.c.state == "done").group_by(receipts.c.register)).all()
    eng.dispose()
    if not rows:
        return {}
    t0 = min(r[1] for r in rows)
    starts = sorted((r[1] - t0).total_seconds() for r in rows)
    t1 = max(r[2] for r in rows)
    ends = sorted((t1 - r[2]).total_seconds() for r in rows)
    return {"first_intent_spread_s": round(starts[-1], 2), "first_intent_p50_s": round(starts[len(starts) // 2], 2),
            "last_outcome_spread_s": round(ends[-1], 2)}


def all_lanes_rate(ledger_url: str) -> tuple[float | None, float]:
    """Receipts per second while EVERY register was sending, between the last register's first intent and
    the first register's last outcome (None if that window is under 1 s: the ramp and the tail overlapped).
    Each receipt counts with the share of its intent → outcome time inside the window, so the window's
    edges do not bias the count by a receipt per register. A farm that runs all day lives in this window;
    the aggregate efficiency also pays the start-up ramp once."""
    from worker.ledger.schema import receipts

    eng = sa.create_engine(ledger_url, poolclass=sa.NullPool)
    with eng.connect() as c:
        rows = c.execute(sa.select(receipts.c.register, receipts.c.intent_at, receipts.c.updated_at)
                         .where(receipts.c.state == "done")).all()
    eng.dispose()
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for reg, intent, outcome in rows:
        first[reg] = min(first.get(reg, intent), intent)
        last[reg] = max(last.get(reg, outcome), outcome)
    if not rows:
        return None, 0.0
    t_a, t_b = max(first.values()), min(last.values())
    window = (t_b - t_a).total_seconds()
    if window < 1.0:
        return None, window
    share = 0.0
    for _reg, intent, out in rows:
        busy = (out - intent).total_seconds()
        inside = (min(out, t_b) - max(intent, t_a)).total_seconds()
        if busy > 0 and inside > 0:
            share += inside / busy
    return share / window, window


def start_hosts(d: Path, registers: int, hosts: int, receipt_ms: int,
                model: str = "shtrih") -> tuple[list[subprocess.Popen], list[str]]:
    """*registers* emulated registers of *model* on TCP, spread over *hosts* processes
    (``bench.farm_hosts``), state in ``d/reg<i>``: the processes and the register URLs in order."""
    from kkt_drivers.jsontcp import server as jsontcp

    # the jsontcp URLs name environment variables for the passwords; the worker inherits them
    os.environ.setdefault(jsontcp.PASSWORD_ENV, jsontcp.EMULATOR_PASSWORD)
    os.environ.setdefault(jsontcp.CONNECTION_PASSWORD_ENV, jsontcp.EMULATOR_CONNECTION_PASSWORD)
    d.mkdir(parents=True, exist_ok=True)
    per = -(-registers // hosts)
    procs: list[subprocess.Popen] = []
    urls: list[str] = []
    try:
        for first in range(0, registers, per):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.farm_hosts", str(d), "--first", str(first),
                 "--count", str(min(per, registers - first)), "--receipt-ms", str(receipt_ms), "--model", model],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=cli_env(), text=True))
        for proc in procs:   # each prints its URLs once every port listens
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                raise RuntimeError(f"register host {proc.pid} exited {proc.wait()}")
            urls += json.loads(line)["urls"]
    except BaseException:
        stop_hosts(procs)
        raise
    return procs, urls


def stop_hosts(procs: list[subprocess.Popen]) -> int:
    """Stop the register hosts (stdin closed); their summed peak RSS in MB (VmHWM, read first)."""
    rss_kb = 0
    for proc in procs:
        try:
            rss_kb += next(int(ln.split()[1]) for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                           if ln.startswith("VmHWM:"))
        except (OSError, StopIteration):
            pass
    for proc in procs:
        if proc.stdin:
            proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return rss_kb // 1024


def invariants(shop: sa.URL, s: Setup) -> dict[str, Any]:
    rep = check(shop, s.ledger_url, s.regs)
    return {"exactly_once": rep.ok, "done": rep.done, "states": rep.states}


# -- the reference: a raw durable loop with the same two commits per receipt ---------------------------

# -- the figures ----------------------------------------------------------------------------------------

def fig_throughput(ctx: "Ctx") -> dict[str, Any]:
    """1. Zero-latency throughput on a backlog, one register; CPU per 1 000 receipts; vs the raw loop."""
    out: dict[str, Any] = {"payments": ctx.backlog, "registers": 1}
    for kind in ctx.ledger_kinds:
        shop = ctx.shop()
        led = Ledgers(kind, ctx.pg_admin, ctx.work)
        try:
            s = setup(ctx.work, f"tput_{kind}", shop, led.new("tput"), 1)
            idle = burst(s)   # the same worker with nothing to do: start-up and shut-down CPU alone
            fill_shop(shop, ctx.backlog)
            run = burst(s)
            done, span, _ = done_span(s.ledger_url)
            if kind == "sqlite":
                raw = raw_sqlite_loop(ctx.work / "raw.db", min(ctx.backlog, 5000))
            else:
                raw = raw_pg_loop(led.new("raw"), min(ctx.backlog, 5000))
            rate = done / span if span else 0.0
            reg_ms = register_cpu_ms_per_receipt(ctx.work / f"calib_{kind}")
            out[kind] = {
                "receipts_per_s": round(rate, 1), "receipts_per_s_wall": round(done / run["wall_s"], 1),
                "cpu_s_per_1000_receipts": round(run["cpu_s"] / done * 1000, 2) if done else None,
                "register_emulator_cpu_s_per_1000": round(reg_ms, 2),
                "worker_cpu_ms_per_receipt_excluding_register":
                    round(run["cpu_s"] / done * 1000 - reg_ms, 2) if done else None,
                # a service starts once: its start-up (imports, migrations check, lanes' lease, scan and
                # shift) measured by a run with nothing to do, and the per-receipt CPU without it
                "startup_cpu_s": round(idle["cpu_s"], 2),
                "worker_cpu_ms_per_receipt_excluding_register_and_startup":
                    round((run["cpu_s"] - idle["cpu_s"]) / done * 1000 - reg_ms, 2) if done else None,
                "raw_durable_loop_receipts_per_s": round(raw, 1),
                "ratio_to_raw": round(rate / raw, 3) if raw else None,
                "target": {"receipts_per_s": 1000 if kind == "sqlite" else 600, "ratio_to_raw": 0.35,
                           "worker_cpu_ms_per_receipt_excluding_register_and_startup": 1.0},
                **invariants(shop, s),
            }
        finally:
            led.drop()
            ctx.drop(shop)
    return out


def _efficiency(ctx: "Ctx", name: str, registers: int, per_reg: int, receipt_ms: int,
                faults: dict[int, str] | None = None, hosts: int = 0, model: str = "shtrih") -> dict[str, Any]:
    """Pool efficiency of one ``run --burst``; *hosts* > 0: the registers are Shtrih-M emulators on
    TCP in that many separate processes (the worker only waits on sockets), else in-process."""
    shop = ctx.shop()
    led = Ledgers("sqlite", ctx.pg_admin, ctx.work)
    procs: list[subprocess.Popen] = []
    hosts_rss_mb = None
    try:
        fill_shop(shop, registers * per_reg)
        served = None
        if hosts:
            procs, served = start_hosts(ctx.work / name, registers, hosts, receipt_ms, model)
        s = setup(ctx.work, name, shop, led.new(name), registers, receipt_ms=receipt_ms, faults=faults,
                  served=served,
                  retry={"base_delay_s": 1, "max_delay_s": 5, "device_pause_s": 5, "max_attempts": 50})
        try:
            run = burst(s)
        finally:
            if procs:   # stopped before the check: the journals are complete and nobody writes them
                hosts_rss_mb = stop_hosts(procs)
        done, span, per = done_span(s.ledger_url)
        steady, window = all_lanes_rate(s.ledger_url)
        ideal = registers * 1000 / receipt_ms
        res: dict[str, Any] = {"registers": registers, "receipt_ms": receipt_ms, "payments": registers * per_reg,
                               "receipts_per_s": round(done / span, 2) if span else 0.0,
                               "ideal_receipts_per_s": ideal,
                               "efficiency": round(done / span / ideal, 3) if span else 0.0,
                               # each register's receipts over its own first intent → last outcome (the
                               # aggregate above also pays for lanes starting one after another)
                               "per_register_efficiency_mean": round(statistics.mean(
                                   c / sp * receipt_ms / 1000 for c, sp in per.values() if sp), 3) if per else None,
                               "worker_cpu_s": round(run["cpu_s"], 1), **lane_starts(s.ledger_url),
                               # the rate while all registers were sending (no ramp, no tail), and that window
                               "efficiency_all_lanes_running": round(steady / ideal, 3) if steady else None,
                               "all_lanes_running_window_s": round(window, 2),
                               **invariants(shop, s)}
        if faults:
            healthy = {k: v for k, v in per.items() if k not in {f"kkt{i:03d}" for i in faults}}
            rates = [c / sp * receipt_ms / 1000 for c, sp in healthy.values() if sp]
            res["healthy_registers_efficiency_min"] = round(min(rates), 3) if rates else None
            res["healthy_registers_efficiency_mean"] = round(statistics.mean(rates), 3) if rates else None
            res["failing_register_done"] = sum(c for k, (c, _) in per.items() if k not in healthy)
        if hosts:
            res.update(register_model=model, register_hosts=hosts, register_hosts_rss_mb=hosts_rss_mb, worker_maxrss_mb=round(
                run["maxrss_mb"], 1))
        return res
    finally:
        stop_hosts(procs)
        led.drop()
        ctx.drop(shop)


def fig_pool(ctx: "Ctx") -> dict[str, Any]:
    """2. Pool efficiency: 8 registers × 1 s per receipt."""
    return {**_efficiency(ctx, "pool8", 8, ctx.per_reg, 1000), "target": {"efficiency": 0.95}}


def fig_farm(ctx: "Ctx") -> dict[str, Any]:
    """2b. The farm: 200 registers × 1 s per receipt, one worker process."""
    return {**_efficiency(ctx, "farm200", 200, ctx.farm_per_reg, 1000), "target": {"efficiency": 0.95}}


def fig_farm_out_of_process(ctx: "Ctx") -> dict[str, Any]:
    """2c. The same farm with the registers out of the worker process: 200 emulators on TCP
    (``--farm-model``: jsontcp by default, or shtrih) in ``FARM_HOSTS`` processes (``bench.farm_hosts``),
    1 s to close each receipt."""
    res = _efficiency(ctx, "farm200oop", 200, ctx.farm_per_reg, 1000, hosts=FARM_HOSTS, model=ctx.farm_model)
    return {**res, "target": {"efficiency": 0.95}}


def fig_failing(ctx: "Ctx") -> dict[str, Any]:
    """7. One of 8 registers fails half its calls (link errors, certainly unsent): the other seven."""
    res = _efficiency(ctx, "failing", 8, ctx.per_reg, 1000, faults={0: "fail_before_send=0.5&seed=7"})
    return {**res, "target": {"healthy_registers_efficiency_min": 0.95}}


def _worker_pid_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, bytes written to storage) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return cpu, int(io["write_bytes"])


def _ledger_bytes(ledger_url: str) -> int:
    path = Path(sa.make_url(ledger_url).database or "")
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def fig_idle(ctx: "Ctx") -> dict[str, Any]:
    """4. Idle cost of a worker with 8 lanes at the default poll interval."""
    shop = ctx.shop()
    led = Ledgers("sqlite", ctx.pg_admin, ctx.work)
    try:
        s = setup(ctx.work, "idle", shop, led.new("idle"), 8, source={"poll_interval_s": 1.0})
        proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(s.settings), "run"],
                                cwd=s.settings.parent, env=cli_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(IDLE_SETTLE_S)
            cpu0, w0 = _worker_pid_stats(proc.pid)
            l0 = _ledger_bytes(s.ledger_url)
            time.sleep(ctx.idle_s)
            cpu1, w1 = _worker_pid_stats(proc.pid)
            l1 = _ledger_bytes(s.ledger_url)
        finally:
            proc.terminate()
            proc.wait(30)
        return {"seconds": ctx.idle_s, "lanes": 8, "poll_interval_s": 1.0,
                "cpu_percent_of_a_core": round((cpu1 - cpu0) / ctx.idle_s * 100, 2),
                "ledger_growth_bytes_per_s": round((l1 - l0) / ctx.idle_s, 1),
                "process_storage_write_bytes_per_s": round((w1 - w0) / ctx.idle_s, 1),
                "target": {"cpu_percent_of_a_core": 1.0, "ledger_bytes_per_s": 1024}}
    finally:
        led.drop()
        ctx.drop(shop)


def fig_latency(ctx: "Ctx") -> dict[str, Any]:
    """3. MySQL commit → receipt recorded, at a steady rate below capacity (4 registers × 200 ms)."""
    shop = ctx.shop()
    led = Ledgers("sqlite", ctx.pg_admin, ctx.work)
    rate, receipt_ms, poll = 5.0, 200, 1.0
    try:
        s = setup(ctx.work, "latency", shop, led.new("latency"), 4, receipt_ms=receipt_ms,
                  source={"poll_interval_s": poll})
        proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(s.settings), "run"],
                                cwd=s.settings.parent, env=cli_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        committed: dict[int, float] = {}
        try:
            time.sleep(IDLE_SETTLE_S)
            eng = sa.create_engine(shop, poolclass=sa.NullPool)
            n = int(rate * ctx.latency_s)
            t_next = time.time()
            for _ in range(n):
                with eng.begin() as c:
                    pid = c.exec_driver_sql(
                        "INSERT INTO payments (kind, order_ref, amount, customer_email, paid_at) "
                        "VALUES ('sale', 'L', 150.50, 'buyer@example.ru', '2026-11-20 12:00:00')").lastrowid
                    c.exec_driver_sql("INSERT INTO payment_items (payment_id, line_no, name, price, quantity, "
                                      "amount, vat) VALUES (%s, 1, 'Товар', 150.50, 1, 150.50, 'vat22')", (pid,))
                committed[int(pid)] = time.time()   # after COMMIT returned
                t_next += 1 / rate
                time.sleep(max(0.0, t_next - time.time()))
            eng.dispose()
            deadline = time.time() + 30
            while time.time() < deadline and check(shop, s.ledger_url, s.regs).done < n:
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(30)
        from worker.ledger.schema import payments, receipts

        eng = sa.create_engine(s.ledger_url, poolclass=sa.NullPool)
        with eng.connect() as c:
            rows = c.execute(sa.select(payments.c.source_id, receipts.c.updated_at)
                             .select_from(receipts.join(payments, payments.c.id == receipts.c.payment_id))
                             .where(receipts.c.state == "done")).all()
        eng.dispose()
        import calendar

        lat = sorted(calendar.timegm(r[1].timetuple()) + r[1].microsecond / 1e6 - committed[r[0]] for r in rows)
        p = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else None  # noqa: E731
        return {"rate_per_s": rate, "registers": 4, "receipt_ms": receipt_ms, "poll_interval_s": poll,
                "receipts": len(lat), "p50_s": p(0.5), "p99_s": p(0.99), "max_s": round(lat[-1], 3) if lat else None,
                "target": {"p99_s": poll + receipt_ms / 1000 + 0.1}, **invariants(shop, s)}
    finally:
        led.drop()
        ctx.drop(shop)


def fig_rss(ctx: "Ctx") -> dict[str, Any]:
    """5. Peak RSS after a small and a large backlog (same settings, one register, zero latency)."""
    out: dict[str, Any] = {}
    for n in (1000, ctx.rss_big):
        shop = ctx.shop()
        led = Ledgers("sqlite", ctx.pg_admin, ctx.work)
        try:
            fill_shop(shop, n)
            s = setup(ctx.work, f"rss{n}", shop, led.new(f"rss{n}"), 1)
            proc = subprocess.Popen([sys.executable, "-m", "worker", "-c", str(s.settings), "run", "--burst"],
                                    cwd=s.settings.parent, env=cli_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            peak = 0
            while proc.poll() is None:   # RUSAGE_CHILDREN is a max over all children: read this one's VmHWM
                try:
                    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.2)
            out[f"peak_rss_mb_after_{n}"] = round(peak / 1024, 1)
            out[f"exactly_once_{n}"] = invariants(shop, s)["exactly_once"]
        finally:
            led.drop()
            ctx.drop(shop)
    small, big = out["peak_rss_mb_after_1000"], out[f"peak_rss_mb_after_{ctx.rss_big}"]
    out["ratio"] = round(big / small, 3) if small else None
    out["target"] = {"ratio": 1.2, "note": f"large run is {ctx.rss_big} receipts (the brief's is 100 000)"}
    return out


def fig_source(ctx: "Ctx") -> dict[str, Any]:
    """6. Source scale: the poll query's p99 on a big table vs a small one; ingesting a 100k backlog."""
    from worker.ingest.poller import Ingestor
    from worker.ledger import migrate
    from worker.ledger.store import Ledger
    from worker.settings import load_settings
    from worker.app import build_planner, open_shop_source

    def poll_p99(src: Any, cursor: int, polls: int = 300) -> float:
        times = []
        for _ in range(polls):
            t0 = time.perf_counter()
            src.fetch_after(cursor, 500)
            times.append(time.perf_counter() - t0)
        times.sort()
        return round(times[int(0.99 * len(times))] * 1000, 2)

    shop = ctx.shop()
    led = Ledgers("sqlite", ctx.pg_admin, ctx.work)
    try:
        out: dict[str, Any] = {}
        _, small_last = fill_shop(shop, 1000, items=False)
        s = setup(ctx.work, "source", shop, led.new("source"), 1)
        settings = load_settings(s.settings)
        src = open_shop_source(settings)
        out["idle_poll_p99_ms_1k_rows"] = poll_p99(src, small_last)
        _, big_last = fill_shop(shop, ctx.source_rows - 1000 - ctx.source_backlog, items=False)
        out["idle_poll_p99_ms_big_table"] = poll_p99(src, big_last)
        first, last = fill_shop(shop, ctx.source_backlog)
        out["table_rows"] = last
        ledger = Ledger(s.ledger_url)
        migrate.upgrade(ledger.engine)
        ing = Ingestor(src, ledger, build_planner(settings, ledger, src), start_after_id=first - 1)
        t0 = time.perf_counter()
        polls = []
        while True:
            p0 = time.perf_counter()
            r = ing.poll_once()
            polls.append(time.perf_counter() - p0)
            if not r.fetched:
                break
        out["backlog_rows"] = ctx.source_backlog
        out["backlog_ingest_s"] = round(time.perf_counter() - t0, 1)
        out["ingest_rows_per_s"] = round(ctx.source_backlog / (time.perf_counter() - t0), 1)
        out["full_poll_p99_ms"] = round(sorted(polls)[int(0.99 * len(polls))] * 1000, 1)
        out["idle_poll_p99_ms_after"] = poll_p99(src, last)
        out["target"] = {"note": "idle poll p99 must not grow with the table (primary-key range scan)"}
        src.close()
        ledger.dispose()
        return out
    finally:
        led.drop()
        ctx.drop(shop)


FIGURES: dict[str, Callable[["Ctx"], dict[str, Any]]] = {
    "throughput": fig_throughput, "pool": fig_pool, "farm": fig_farm, "farm_out_of_process": fig_farm_out_of_process,
    "latency": fig_latency,
    "idle": fig_idle, "rss": fig_rss, "source": fig_source, "failing": fig_failing,
}


@dataclass
class Ctx:
    """Sizes and scratch resources of one benchmark run."""

    work: Path
    admin_url: str
    pg_admin: str
    ledger_kinds: tuple[str, ...]
    backlog: int
    per_reg: int
    farm_per_reg: int
    idle_s: float
    latency_s: float
    rss_big: int
    source_rows: int
    source_backlog: int
    #: the wire protocol of ``farm_out_of_process``'s registers (bench.farm_hosts ``--model``)
    farm_model: str = "jsontcp"

    def shop(self) -> sa.URL:
        return create_shop(self.admin_url)

    def drop(self, shop: sa.URL) -> None:
        drop_shop(self.admin_url, shop)


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return dict(backlog=2000, per_reg=10, farm_per_reg=5, idle_s=20.0, latency_s=20.0, rss_big=10_000,
                    source_rows=200_000, source_backlog=20_000)
    return dict(backlog=20_000, per_reg=30, farm_per_reg=10, idle_s=60.0, latency_s=60.0, rss_big=30_000,
                source_rows=1_000_000, source_backlog=100_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (the JSON says which)")
    ap.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated figures: {', '.join(FIGURES)}")
    ap.add_argument("--ledgers", default="sqlite,postgresql", help="ledgers for the throughput figure")
    ap.add_argument("--admin-url", default=ADMIN_URL, help="MariaDB URL allowed to create scratch databases")
    ap.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="PostgreSQL URL allowed to create databases")
    ap.add_argument("--farm-model", choices=("jsontcp", "shtrih"), default="jsontcp",
                    help="wire protocol of farm_out_of_process's registers (shtrih: ~25 ms of worker CPU per receipt)")
    ap.add_argument("--farm-per-register", type=int, default=None,
                    help="receipts per register in the farm figures (default: 10, --quick 5); more amortizes the ramp")
    args = ap.parse_args()
    wanted = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {unknown}; known: {', '.join(FIGURES)}")
    size = sizes(args.quick)
    if args.farm_per_register:
        size["farm_per_reg"] = args.farm_per_register
    result: dict[str, Any] = {"cores": os.cpu_count(), "quick": args.quick, "python": sys.version.split()[0],
                              "sizes": size, "figures": {}}
    with tempfile.TemporaryDirectory(prefix="kkt-pool-bench-") as d:
        ctx = Ctx(Path(d), args.admin_url, args.pg_admin_url, tuple(args.ledgers.split(",")), **size,
                  farm_model=args.farm_model)
        for name in wanted:
            t0 = time.perf_counter()
            try:
                fig = FIGURES[name](ctx)
            except Exception as exc:  # one broken figure must not hide the others
                fig = {"error": f"{type(exc).__name__}: {exc}"}
            fig["bench_seconds"] = round(time.perf_counter() - t0, 1)
            result["figures"][name] = fig
            print(f"[bench.pool] {name}: {json.dumps(fig, default=str)}", file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
