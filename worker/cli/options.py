"""What every command shares: the context (settings, ledger), options declared once with their env vars.

Every option shows its environment variable in ``--help`` (:func:`opt`); the names follow click's
``auto_envvar_prefix`` (``KKT_<COMMAND>_<OPTION>``), set once on the group in :mod:`worker.cli.main`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from worker import app
from worker.defaults import SETTINGS_FILE
from worker.ledger.states import State
from worker.ledger.store import Ledger
from worker.settings import Settings, load_settings


def opt(*decls: str, **kw: Any) -> Callable[[Any], Any]:
    """click.option that always shows its environment variable in --help."""
    kw.setdefault("show_envvar", True)
    return click.option(*decls, **kw)


class Ctx:
    """Lazily opened settings and ledger shared by the subcommands (built by :mod:`worker.app`)."""

    def __init__(self, config: str | None) -> None:
        self.config_path = config
        self._settings: Settings | None = None
        self._ledger: Ledger | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            path = self.config_path
            if path is None and Path(SETTINGS_FILE).exists():
                path = SETTINGS_FILE
            self._settings = load_settings(path)
        return self._settings

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = app.open_ledger(self.settings)
        return self._ledger


pass_ctx = click.make_pass_decorator(Ctx)

#: ``--register NAME`` of the commands that talk to one register
register_option = opt("--register", default=None, help="register name from settings")


def receipt_filters(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--state``, ``--from``, ``--to``, ``--id``: the filters of ``ledger list`` and ``ledger export``."""
    f = opt("--state", "states", multiple=True, type=click.Choice([s.value for s in State]),
            help="only these states (repeatable)")(f)
    f = opt("--from", "since", default=None, help="created on or after (YYYY-MM-DD[THH:MM], UTC)")(f)
    f = opt("--to", "until", default=None, help="created before (YYYY-MM-DD[THH:MM], UTC)")(f)
    f = opt("--id", "ids", multiple=True, type=int, help="shop payment id (repeatable)")(f)
    return f


def print_counts(ledger: Ledger) -> None:
    """``receipts: done 3, queued 1`` (or ``none``)."""
    counts = ledger.counts()
    click.echo("receipts: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
