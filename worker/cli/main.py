"""The ``kkt-worker`` command line (click): the group, and every command group attached to it.

Each command group is a module of module-level commands (rq's ``cli/`` is the model); this module
only assembles them. Every option can come from a KKT_* environment variable.
"""
from __future__ import annotations

import logging
import sys

import click

from worker import __version__
from worker import log as wlog
from worker.cli import admin, corrections, demo, emulator, exitcodes, ledger, registers, reports, run, shift, tools
from worker.cli.options import Ctx, opt
from worker.defaults import SETTINGS_FILE


@click.group(context_settings={"auto_envvar_prefix": "KKT", "show_default": True,
                               "help_option_names": ["-h", "--help"]})
@opt("-c", "--config", type=click.Path(dir_okay=False), default=None,
     help=f"settings.yaml to use (default: {SETTINGS_FILE})")
@opt("--log-level", default=None, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
     help="override log.level from the settings")
@click.version_option(__version__, prog_name="kkt-worker")
@click.pass_context
def cli(ctx: click.Context, config: str | None, log_level: str | None) -> None:
    """kkt-worker: fiscalizes a shop's paid orders on cash registers, exactly once (54-FZ).

    Exit statuses: 0 ok, 1 something needs a person (check, status --check), 2 wrong command line,
    3 burst timed out, 65 data refused, 69 unreachable, 70 bug, 75 another worker holds it,
    77 permission denied, 78 configuration, 130 stopped at once (see README "Exit statuses").
    """
    # nothing is read here: --help must work whatever the settings file says
    wlog.setup(log_level or "INFO")
    ctx.obj = Ctx(config, log_level)


for command in (run.run, run.migrate, run.check, ledger.status, ledger.ledger, admin.backfill, admin.resend,
                admin.reconcile, shift.shift, shift.report, demo.demo, emulator.emulator, corrections.correction,
                tools.drivers, tools.preview, registers.adopt):
    cli.add_command(command)
for command in (reports.daily, reports.shift_report, reports.period):  # the accountant's reports
    shift.report.add_command(command)


def main() -> None:
    """Console-script entry point: every failure is one line on stderr and a documented exit status."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        exc.show()
        code = exitcodes.USAGE
    except click.ClickException as exc:
        exc.show()
        code = exitcodes.DATAERR
    except click.Abort:
        click.echo("aborted", err=True)
        code = exitcodes.INTERRUPTED
    except Exception as exc:
        code, message = exitcodes.classify(exc)
        logging.getLogger("worker.cli").debug("command failed", exc_info=True)
        click.echo(f"error: {message}", err=True)
    sys.exit(code or 0)
