"""The ``kkt-worker`` command line (click). Every option can come from a KKT_* environment variable."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from worker import __version__
from worker import log as wlog
from worker.errors import ConfigError, WorkerError
from worker.ledger.store import Ledger
from worker.settings import Settings, load_settings, mask_url

DEFAULT_SETTINGS_FILE = "settings.yaml"


def opt(*decls: str, **kw: Any) -> Callable[[Any], Any]:
    """click.option that always shows its environment variable in --help."""
    kw.setdefault("show_envvar", True)
    return click.option(*decls, **kw)


class Ctx:
    """Lazily opened settings and ledger shared by the subcommands."""

    def __init__(self, config: str | None) -> None:
        self.config_path = config
        self._settings: Settings | None = None
        self._ledger: Ledger | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            path = self.config_path
            if path is None and Path(DEFAULT_SETTINGS_FILE).exists():
                path = DEFAULT_SETTINGS_FILE
            self._settings = load_settings(path)
        return self._settings

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.settings.ledger_url)
        return self._ledger


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"auto_envvar_prefix": "KKT", "show_default": True,
                               "help_option_names": ["-h", "--help"]})
@opt("-c", "--config", type=click.Path(dir_okay=False), default=None,
     help="settings.yaml to use (default: ./settings.yaml if present, else the embedded demo defaults)")
@opt("--log-level", default=None, help="override log.level from the settings")
@click.version_option(__version__, prog_name="kkt-worker")
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_level: str | None) -> None:
    """kkt-worker: fiscalizes a shop's paid orders on cash registers, exactly once (54-FZ)."""
    c = Ctx(config)
    ctx.obj = c
    try:
        wlog.setup(log_level or c.settings.log.level, c.settings.log.format)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def main() -> None:
    """Console-script entry point: configuration errors become a one-line message and exit 2."""
    try:
        cli(standalone_mode=True)
    except WorkerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


# -- the service ---------------------------------------------------------------------------------
@cli.command()
@opt("--burst", is_flag=True, help="drain what there is, then exit")
@opt("--burst-timeout", type=float, default=None, help="with --burst: give up after this many seconds (exit 3)")
@pass_ctx
def run(c: Ctx, burst: bool, burst_timeout: float | None) -> None:
    """Poll the shop and fiscalize, until SIGTERM (or drained, with --burst)."""
    from worker.ledger.runlock import RunLock
    from worker.loop import Worker, check_ledger_ready

    check_ledger_ready(c.ledger)
    with RunLock(c.ledger):
        worker = Worker(c.settings, c.ledger, burst=burst, burst_timeout_s=burst_timeout)
        code = worker.run()
    if burst:
        s = worker.summary
        click.echo(f"ingested {s.ingested} payments, fiscalized {s.done} receipts")
        _print_counts(c.ledger)
    sys.exit(code)


@cli.command()
@pass_ctx
def migrate(c: Ctx) -> None:
    """Create or upgrade the ledger to the latest schema."""
    from worker.ledger import migrate as m
    m.upgrade(c.ledger.engine)
    click.echo(f"ledger {mask_url(c.settings.ledger_url)} at revision {m.current_revision(c.ledger.engine)}")


@cli.command()
@pass_ctx
def check(c: Ctx) -> None:
    """Check settings, the shop source, the ledger revision and every register. Exit 1 on a problem."""
    from kkt_drivers import open_driver
    from worker.ledger import migrate as m
    from worker.ledger.db import sqlite_durability
    from worker.wiring import open_shop_source, receipt_config

    ok = True

    def report(name: str, good: bool, detail: str) -> None:
        nonlocal ok
        ok &= good
        click.echo(f"[{'ok' if good else 'FAIL'}] {name}: {detail}")

    s = c.settings
    try:
        receipt_config(s)
        report("settings", True, c.config_path or DEFAULT_SETTINGS_FILE)
    except ConfigError as exc:
        report("settings", False, str(exc))
    try:
        src = open_shop_source(s)
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
    for r in s.enabled_registers():
        try:
            with open_driver(r.url) as drv:
                st = drv.status()
            report(f"register {r.name}", st.paper_ok and not st.shift_expired,
                   f"{st.model} serial {st.register_serial} FN {st.fn_serial} last FD {st.last_fd_number} "
                   f"shift {'open' if st.shift_open else 'closed'} #{st.shift_number}"
                   f"{' EXPIRED' if st.shift_expired else ''}{'' if st.paper_ok else ' PAPER OUT'}")
        except Exception as exc:
            report(f"register {r.name}", False, str(exc))
    sys.exit(0 if ok else 1)


def _print_counts(ledger: Ledger) -> None:
    counts = ledger.counts()
    click.echo("receipts: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))


@cli.command()
@opt("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """Counts by state, the cursor, open and expired gaps, lanes."""
    counts = c.ledger.counts()
    details = c.ledger.status_details()
    if as_json:
        click.echo(json.dumps({"counts": counts, **details}, default=str, indent=2))
        return
    _print_counts(c.ledger)
    for cur in details["cursors"]:
        click.echo(f"cursor {cur['source']}: last id {cur['last_id']} (at {cur['updated_at']:%Y-%m-%d %H:%M:%S} UTC)")
    gaps = details["open_gaps"]
    click.echo(f"open gaps: {len(gaps)}" + (f" ({', '.join(str(g['id']) for g in gaps[:20])}"
                                            f"{' …' if len(gaps) > 20 else ''})" if gaps else ""))
    expired = details["expired_gaps"]
    click.echo(f"expired gaps: {len(expired)}" + (
        f" ({', '.join(str(g['id']) + ('' if g['reason'] == 'expired' else ' ' + g['reason']) for g in expired[:20])})"
        if expired else ""))
    for lane in details["lanes"]:
        click.echo(f"lane {lane['name']}: {lane['state']} (heartbeat {lane['heartbeat_at']:%H:%M:%S} UTC) "
                   f"FN {lane['fn_serial']} last FD {lane['last_fd']}"
                   f"{' — ' + lane['reason'] if lane['reason'] else ''}")


from worker.cli.admin import register_admin_commands  # noqa: E402  (commands in their own module)

register_admin_commands(cli, pass_ctx, opt)

from worker.cli.admin import register_demo_commands  # noqa: E402

register_demo_commands(cli, opt)

from worker.cli.emulator import register_emulator_commands  # noqa: E402

register_emulator_commands(cli, opt)

from worker.cli.corrections import register_correction_commands  # noqa: E402

register_correction_commands(cli, pass_ctx, opt)
