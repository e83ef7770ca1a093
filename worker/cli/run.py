"""``run``, ``migrate``, ``check``: the service and what it needs before it starts."""
from __future__ import annotations

import json
import sys

import click

from worker import app
from worker.cli.options import Ctx, opt, pass_ctx, print_counts
from worker.defaults import SETTINGS_FILE
from worker.errors import ConfigError
from worker.settings import mask_url


@click.command()
# a mode switch is never taken from the environment: a stray KKT_RUN_BURST must not make the service exit
@opt("--burst", is_flag=True, allow_from_autoenv=False, show_envvar=False, help="drain what there is, then exit")
@opt("--burst-timeout", type=float, default=None, allow_from_autoenv=False, show_envvar=False,
     help="with --burst: give up after this many seconds (exit 3)")
@pass_ctx
def run(c: Ctx, burst: bool, burst_timeout: float | None) -> None:
    """Poll the shop and fiscalize, until SIGTERM (or drained, with --burst)."""
    from worker.ledger.runlock import RunLock
    from worker.loop import Worker, check_ledger_ready

    check_ledger_ready(c.ledger)
    # cluster mode: the lock is shared by every cluster worker; the register leases keep them apart
    with RunLock(c.ledger, shared=c.settings.cluster.enabled) as lock:
        worker = Worker(c.settings, c.ledger, burst=burst, burst_timeout_s=burst_timeout, settings_path=c.config_path,
                        runlock=lock)
        code = worker.run()
    if burst:
        s = worker.summary
        click.echo(f"ingested {s.ingested} payments, fiscalized {s.done} receipts")
        print_counts(c.ledger)
    sys.exit(code)


@click.command()
@pass_ctx
def migrate(c: Ctx) -> None:
    """Create or upgrade the ledger to the latest schema."""
    from worker.ledger import migrate as m
    m.upgrade(c.ledger.engine)
    click.echo(f"ledger {mask_url(c.settings.ledger_url)} at revision {m.current_revision(c.ledger.engine)}")


@click.command()
@opt("--output", type=click.Choice(["text", "json"]), default="text", help="output format")
@pass_ctx
def check(c: Ctx, output: str) -> None:
    """Check settings, the shop source, the ledger revision and every register. Exit 1 on a problem."""
    from worker.ledger import migrate as m
    from worker.ledger.db import sqlite_durability

    ok = True
    results: list[dict[str, object]] = []

    def report(name: str, good: bool, detail: str) -> None:
        nonlocal ok
        ok &= good
        results.append({"check": name, "ok": good, "detail": detail})
        if output == "text":
            click.echo(f"[{'ok' if good else 'FAIL'}] {name}: {detail}")

    s = c.settings
    try:
        app.receipt_config(s)
        report("settings", True, c.config_path or SETTINGS_FILE)
    except ConfigError as exc:
        report("settings", False, str(exc))
    try:
        src = app.open_shop_source(s)
        src.ping()
        report("source", True, f"{mask_url(s.source_url)} reachable, max id {src.max_id()}")
        src.close()
    except Exception as exc:
        report("source", False, f"{mask_url(s.source_url)}: {exc}")
    try:
        cur, head = m.current_revision(c.ledger.engine), m.head_revision()
        extra = ""
        if c.ledger.engine.dialect.name == "sqlite":
            extra = " " + json.dumps(sqlite_durability(c.ledger.engine))
        report("ledger", cur == head, f"{mask_url(s.ledger_url)} revision {cur} (head {head}){extra}")
    except Exception as exc:
        report("ledger", False, str(exc))
    from worker.ledger.space import free_mb

    free = free_mb(s.ledger_url)
    report("ledger disk", free is None or free >= s.ledger.min_free_mb,
           "free space unknown (database server)" if free is None else
           f"{free:.0f} MB free (ingest pauses below {s.ledger.min_free_mb} MB)")
    try:
        live = {lease["register"]: lease for lease in c.ledger.leases() if lease["live"]}
    except Exception:
        live = {}
    for r in s.enabled_registers():
        if r.name in live:   # never a second link to a register its lease holder talks to
            lease = live[r.name]
            report(f"register {r.name}", True, f"in use by {lease['holder']} (lease epoch {lease['epoch']} until "
                                              f"{lease['expires_at']:%H:%M:%S} UTC); not opened")
            continue
        try:
            with app.open_register(r) as drv:
                st = drv.status()
            report(f"register {r.name}", st.paper_ok and not st.shift_expired,
                   f"{st.model} serial {st.register_serial} FN {st.fn_serial} last FD {st.last_fd_number} "
                   f"shift {'open' if st.shift_open else 'closed'} #{st.shift_number}"
                   f"{' EXPIRED' if st.shift_expired else ''}{'' if st.paper_ok else ' PAPER OUT'}")
        except Exception as exc:
            report(f"register {r.name}", False, str(exc))
    if output == "json":
        click.echo(json.dumps({"ok": ok, "checks": results}, ensure_ascii=False, indent=2))
    sys.exit(0 if ok else 1)
