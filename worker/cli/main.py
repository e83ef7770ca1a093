"""The ``kkt-worker`` command line (click): the group, and every command group attached to it.

Each command group is a module of module-level commands (rq's ``cli/`` is the model); this module
only assembles them. Every option can come from a KKT_* environment variable.
"""
from __future__ import annotations

import sys

import click

from worker import __version__
from worker import log as wlog
from worker.cli import admin, corrections, demo, emulator, ledger, run, shift
from worker.cli.options import Ctx, opt
from worker.errors import ConfigError, WorkerError


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


for command in (run.run, run.migrate, run.check, ledger.status, ledger.ledger, admin.backfill, admin.resend,
                admin.reconcile, shift.shift, shift.report, demo.demo, emulator.emulator, corrections.correction):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point: configuration errors become a one-line message and exit 2."""
    try:
        cli(standalone_mode=True)
    except WorkerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
