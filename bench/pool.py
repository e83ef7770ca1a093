"""The register pool benchmark: throughput, pool efficiency, the farm, latency, idle cost, memory, source scale.

    .venv/bin/python -m bench.pool                 # the full run (tens of minutes on 2 cores)
    .venv/bin/python -m bench.pool --quick         # smaller sizes, same figures (a few minutes)
    .venv/bin/python -m bench.pool --quick --only throughput,pool

Everything is real except the registers: a scratch MariaDB shop database (``--admin-url``), the
worker's own CLI (``python -m worker run``) in a subprocess, SQLite (WAL, synchronous=FULL) and
PostgreSQL (``--pg-admin-url``) ledgers with durable commits, and in-process emulated registers whose
latency is set per receipt (``receipt_latency_ms``; the register's own journal is not fsync'ed — it is
the device, not the worker; ``farm_out_of_process`` puts them in other processes behind a wire protocol,
jsontcp or Shtrih-M, see bench/farm_hosts.py). The shop, ledgers and worker runs are in bench/harness.py,
what a finished run's ledger says about its pace in bench/timeline.py. Each run ends with the exactly-once invariants
(``tests/chaos/invariants.py``) checked against the registers' journals: ``"exactly_once": true``.

Prints ONE JSON object (see docs/pool.md, "Reading the benchmark"): ``cores`` and every figure with the
target it is compared to. Timing-based figures are noisy on a shared 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from bench import harness, procfs
from bench.farm_hosts import start_hosts, stop_hosts
from bench.harness import PG_ADMIN_URL, Ledgers, burst, fill_shop, invariants, setup
from bench.reference import raw_pg_loop, raw_sqlite_loop, register_cpu_ms_per_receipt
from bench.timeline import all_lanes_rate, done_span, ingest_overlap, lane_pace, lane_starts
from bench.wal import WalCounter
from tests.chaos.campaign import ADMIN_URL, create_shop, drop_shop
from tests.chaos.invariants import check
from tests.shop import children, cli_env

#: processes hosting the out-of-process farm's registers (50 Shtrih-M emulators each)
FARM_HOSTS = 4
#: farm_jitter: each in-process register's receipt takes 1 s ± up to this much
FARM_JITTER_MS = 50
IDLE_SETTLE_S = 5.0          # let a fresh worker finish starting before the idle window opens


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
                **ingest_overlap(s.ledger_url),
                "target": {"receipts_per_s": 1000 if kind == "sqlite" else 600, "ratio_to_raw": 0.35,
                           "worker_cpu_ms_per_receipt_excluding_register_and_startup": 1.0},
                **invariants(shop, s),
            }
        finally:
            led.drop()
            ctx.drop(shop)
    return out


def _efficiency(ctx: "Ctx", name: str, registers: int, per_reg: int, receipt_ms: int,
                faults: dict[int, str] | None = None, hosts: int = 0, model: str = "shtrih",
                jitter_ms: int = 0) -> dict[str, Any]:
    """Pool efficiency of one ``run --burst``; *hosts* > 0: the registers are *model* emulators on TCP
    in that many separate processes (the worker only waits on sockets), else in-process (*jitter_ms*:
    each receipt's time varies by up to ± this much around *receipt_ms*)."""
    shop = ctx.shop()
    led = Ledgers("sqlite", ctx.pg_admin, ctx.work)
    procs: list[subprocess.Popen] = []
    host_use: dict[str, float] = {}
    try:
        fill_shop(shop, registers * per_reg)
        served = None
        if hosts:
            procs, served = start_hosts(ctx.work / name, registers, hosts, receipt_ms, model)
        s = setup(ctx.work, name, shop, led.new(name), registers, receipt_ms=receipt_ms, jitter_ms=jitter_ms,
                  faults=faults, served=served,
                  retry={"base_delay_s": 1, "max_delay_s": 5, "device_pause_s": 5, "max_attempts": 50})
        try:
            run = burst(s)
        finally:
            if procs:   # stopped before the check: the journals are complete and nobody writes them
                host_use = stop_hosts(procs)
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
                               "all_lanes_running_window_s": round(window, 2), **lane_pace(s.ledger_url),
                               **invariants(shop, s)}
        if faults:
            healthy = {k: v for k, v in per.items() if k not in {f"kkt{i:03d}" for i in faults}}
            rates = [c / sp * receipt_ms / 1000 for c, sp in healthy.values() if sp]
            res["healthy_registers_efficiency_min"] = round(min(rates), 3) if rates else None
            res["healthy_registers_efficiency_mean"] = round(statistics.mean(rates), 3) if rates else None
            res["failing_register_done"] = sum(c for k, (c, _) in per.items() if k not in healthy)
        if hosts:
            res.update(register_model=model, register_hosts=hosts, register_hosts_rss_mb=host_use["rss_mb"],
                       register_hosts_cpu_s=host_use["cpu_s"], worker_maxrss_mb=round(run["maxrss_mb"], 1),
                       ingest_maxrss_mb=round(run["ingest_maxrss_mb"], 1))
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


def fig_farm_jitter(ctx: "Ctx") -> dict[str, Any]:
    """2b'. The in-process farm with each receipt's time varying uniformly by ±50 ms around the same 1 s
    (the mean, and so the ideal, unchanged): the stand-ins no longer finish in lockstep. A diagnostic of
    what the lockstep costs ``farm``; how much real printers vary is our guess."""
    res = _efficiency(ctx, "farm200j", 200, ctx.farm_per_reg, 1000, jitter_ms=FARM_JITTER_MS)
    return {**res, "receipt_jitter_ms": FARM_JITTER_MS, "target": {"efficiency": 0.95}}


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
    """(CPU seconds, bytes written to storage) of a running worker and its ingest process, from /proc."""
    cpu, written = 0.0, 0
    for p in (pid, *children(pid)):
        io = dict(line.split(": ") for line in Path(f"/proc/{p}/io").read_text().splitlines())
        cpu, written = cpu + procfs.cpu_s(p), written + int(io["write_bytes"])
    return cpu, written


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
            wal = WalCounter(Path(f"{sa.make_url(s.ledger_url).database}-wal"))
            end = time.monotonic() + ctx.idle_s
            while time.monotonic() < end:   # polled: a checkpoint restarts the log without growing the file
                time.sleep(min(0.5, max(0.0, end - time.monotonic())))
                wal.poll()
            cpu1, w1 = _worker_pid_stats(proc.pid)
            l1 = _ledger_bytes(s.ledger_url)
        finally:
            proc.terminate()
            proc.wait(30)
        return {"seconds": ctx.idle_s, "lanes": 8, "poll_interval_s": 1.0,
                "cpu_percent_of_a_core": round((cpu1 - cpu0) / ctx.idle_s * 100, 2),
                # what SQLite appended to the ledger's log (frames × (24 + page size)): the figure the
                # 1 KB/s target is read against; the file's growth misses frames written over a restarted log
                "ledger_bytes_written_per_s": round(wal.bytes_written / ctx.idle_s, 1),
                "ledger_commits_per_s": round(wal.commits / ctx.idle_s, 3), "wal_restarts": wal.restarts,
                "ledger_growth_bytes_per_s": round((l1 - l0) / ctx.idle_s, 1),
                # the kernel's count for the worker and its ingest process: whole pages dirtied in the page
                # cache (a 4 120-byte WAL frame dirties two), the -shm index included
                "process_storage_write_bytes_per_s": round((w1 - w0) / ctx.idle_s, 1),
                "target": {"cpu_percent_of_a_core": 1.0, "ledger_bytes_written_per_s": 1024}}
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
            run = burst(s)   # its peak RSS: the worker's VmHWM and its ingest process's, read while it runs
            # the service's memory: the worker and its ingest process (source.ingest_process)
            out[f"peak_rss_mb_after_{n}"] = round(run["maxrss_mb"] + run["ingest_maxrss_mb"], 1)
            out[f"worker_peak_rss_mb_after_{n}"] = round(run["maxrss_mb"], 1)
            out[f"ingest_peak_rss_mb_after_{n}"] = round(run["ingest_maxrss_mb"], 1)
            out[f"exactly_once_{n}"] = invariants(shop, s)["exactly_once"]
        finally:
            led.drop()
            ctx.drop(shop)
    small, big = out["peak_rss_mb_after_1000"], out[f"peak_rss_mb_after_{ctx.rss_big}"]
    out["ratio"] = round(big / small, 3) if small else None
    out["target"] = {"ratio": 1.2, "receipts": 100_000,
                     "note": None if ctx.rss_big >= 100_000 else f"large run is {ctx.rss_big} receipts (--quick)"}
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
    "throughput": fig_throughput, "pool": fig_pool, "farm": fig_farm, "farm_jitter": fig_farm_jitter,
    "farm_out_of_process": fig_farm_out_of_process,
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
    # the farm runs the pool figure's 30 receipts per register: at 10, a ~10 s run is mostly its start and the
    # drain of a finite backlog (docs/pool.md)
    return dict(backlog=20_000, per_reg=30, farm_per_reg=30, idle_s=60.0, latency_s=60.0, rss_big=100_000,
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
                    help="receipts per register in the farm figures (default 30, as pool; --quick 5)")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR",
                    help="sample every worker run with py-spy (pip install py-spy) into DIR: raw "
                         "collapsed stacks of the GIL holder, one file per run (see bench/README.md)")
    ap.add_argument("--ingest-in-thread", action="store_true",
                    help="source.ingest_process: false (the pollers in the worker's process, as before)")
    args = ap.parse_args()
    harness.PROFILE_DIR = args.profile
    harness.INGEST_IN_THREAD = args.ingest_in_thread
    wanted = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {unknown}; known: {', '.join(FIGURES)}")
    size = sizes(args.quick)
    if args.farm_per_register:
        size["farm_per_reg"] = args.farm_per_register
    result: dict[str, Any] = {"cores": os.cpu_count(), "quick": args.quick, "python": sys.version.split()[0],
                              "ingest": "thread" if args.ingest_in_thread else "process", "sizes": size,
                              "figures": {}}
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
