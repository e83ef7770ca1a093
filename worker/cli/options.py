"""What every command shares: the context (settings, ledger), options declared once with their env vars.

Every option shows its environment variable in ``--help`` (:func:`opt`); the names follow click's
``auto_envvar_prefix`` (``KKT_<COMMAND>_<OPTION>``), set once on the group in :mod:`worker.cli.main`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from worker import app
from worker import log as wlog
from worker.defaults import SETTINGS_FILE
from worker.errors import ConfigError
from worker.ledger.states import State
from worker.ledger.store import Ledger
from worker.settings import Settings, load_settings


def opt(*decls: str, **kw: Any) -> Callable[[Any], Any]:
    """click.option that always shows its environment variable in --help."""
    kw.setdefault("show_envvar", True)
    return click.option(*decls, **kw)


class Ctx:
    """Lazily read settings and lazily opened ledgers shared by the subcommands (built by :mod:`worker.app`).

    Nothing is read before a command needs it, so ``--help`` works whatever state the settings
    file is in. Read commands use :attr:`reader` (a read-only ledger that is never created).
    """

    def __init__(self, config: str | None, log_level: str | None = None) -> None:
        self.config_path = config
        self.log_level = log_level
        self._settings: Settings | None = None
        self._ledger: Ledger | None = None
        self._reader: Ledger | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(resolve_config(self.config_path))
            self.config_path = self.config_path or SETTINGS_FILE
            wlog.setup(self.log_level or self._settings.log.level, self._settings.log.format)
        return self._settings

    @property
    def ledger(self) -> Ledger:
        """The ledger for commands that write (run, migrate, backfill, resend, corrections)."""
        if self._ledger is None:
            self._ledger = app.open_ledger(self.settings)
        return self._ledger

    @property
    def reader(self) -> Ledger:
        """The ledger opened read-only: no file is created, no pragma written (status, ledger, report)."""
        if self._reader is None:
            self._reader = app.open_ledger(self.settings, read_only=True)
        return self._reader


def resolve_config(path: str | None) -> str:
    """``-c FILE`` (``KKT_CONFIG``), else :data:`SETTINGS_FILE`; never a silent fallback to the demo."""
    if path:
        return path
    if Path(SETTINGS_FILE).exists():
        return SETTINGS_FILE
    raise ConfigError(f"no settings: {SETTINGS_FILE} does not exist; pass -c FILE "
                      "(the demo in this folder: -c settings.yaml)")


pass_ctx = click.make_pass_decorator(Ctx)

#: ``--register NAME`` of the commands that talk to one register
register_option = opt("--register", default=None, help="register name from settings")


def receipt_filters(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--state``, ``--from``, ``--to``, ``--id``, ``--search``: the filters of ``ledger list`` and ``export``.

    ``--from``/``--to`` are the shop's local days of the fiscal document (the payment's day for a
    receipt not made yet), both inclusive.
    """
    f = opt("--state", "states", multiple=True, type=click.Choice([s.value for s in State]),
            help="only these states (repeatable)")(f)
    f = opt("--from", "day_from", type=click.DateTime(["%Y-%m-%d"]), default=None,
            help="first fiscal day (the shop's local date)")(f)
    f = opt("--to", "day_to", type=click.DateTime(["%Y-%m-%d"]), default=None,
            help="last fiscal day, inclusive (the shop's local date)")(f)
    f = opt("--id", "ids", multiple=True, type=int, help="shop payment id (repeatable)")(f)
    f = opt("--search", default=None, help="a shop payment id, an FD number or a 1192 tag")(f)
    return f


def filter_args(states: tuple[str, ...], day_from: Any, day_to: Any, ids: tuple[int, ...],
                search: str | None) -> dict[str, Any]:
    """The ledger's list/count keyword arguments from :func:`receipt_filters`' options."""
    return {"states": states, "source_ids": ids, "search": search,
            "day_from": day_from.date() if day_from else None, "day_to": day_to.date() if day_to else None}


def print_counts(ledger: Ledger) -> None:
    """``receipts: done 3, queued 1`` (or ``none``)."""
    counts = ledger.counts()
    click.echo("receipts: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))


def confirm_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--dry-run`` and ``--yes`` for commands that queue receipts or settle them (backfill, resend,
    corrections, adopt); never read from the environment, so a stray variable cannot say yes."""
    f = opt("--yes", is_flag=True, allow_from_autoenv=False, show_envvar=False,
            help="do it without asking (scripts)")(f)
    f = opt("--dry-run", is_flag=True, allow_from_autoenv=False, show_envvar=False,
            help="list what it would do (queue, skip, examine) and why; change nothing")(f)
    return f


def confirmed(question: str, *, yes: bool, effect: str = "this queues receipts for printing") -> None:
    """Go on if ``--yes`` or the person at the terminal says so; a script without --yes is refused
    (the refusal says *effect*: what the command would have done)."""
    import sys

    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{effect}: add --yes (or --dry-run to see what it would do)")
    click.confirm(question, abort=True)


#: ``--output text|json|csv`` of the read commands (csv: a Russian-locale spreadsheet, see :func:`echo_csv`)
OUTPUT_FORMATS = ("text", "json", "csv")


def output_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--output text|json|csv``, declared once for every read command."""
    return opt("--output", "output", type=click.Choice(OUTPUT_FORMATS), default="text",
               help="text for people; json (money as exact strings); csv for a Russian-locale "
                    "spreadsheet (UTF-8 with BOM, ';', decimal comma)")(f)


def echo_csv(write: Callable[[Any], Any]) -> None:
    """Run ``write(text_stream)`` and put the result on stdout as UTF-8 **with a BOM**, whatever
    the terminal's encoding: a spreadsheet opening the redirected file then reads Cyrillic right."""
    import io
    import sys

    buf = io.StringIO(newline="")
    write(buf)
    sys.stdout.flush()
    sys.stdout.buffer.write(buf.getvalue().encode("utf-8-sig"))
    sys.stdout.buffer.flush()
