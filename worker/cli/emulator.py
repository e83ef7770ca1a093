"""``kkt-worker emulator …``: run an emulated register a person (or a real client) can talk to.

``emulator serve NAME STATE_DIR`` starts the emulator the drivers package registers under NAME
(:data:`kkt_drivers.emulators.EMULATORS`: a new register model is one line there, no CLI change);
``emulator shtrih STATE_DIR`` is the older spelling of ``serve shtrih`` with Shtrih-M's options.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import click

from kkt_drivers.emulators import emulator_names, start_emulator
from worker.cli.options import opt
from worker.defaults import EMULATOR_HOST

#: Shtrih-M's usual TCP port (the alias's default)
SHTRIH_PORT = 7778
#: the alias's default serial number
SHTRIH_SERIAL = "0000000000000001"

_FAULT_HELP = "inject a fault: probability or first:N, e.g. lose_reply_after_close=0.05 (repeatable)"


def _pairs(values: tuple[str, ...], hint: str) -> dict[str, str]:
    try:
        return dict(v.split("=", 1) for v in values)
    except ValueError as exc:
        raise click.BadParameter("use NAME=VALUE", param_hint=hint) from exc


def _typed(value: str) -> Any:
    """An option value as the emulator expects it: a number where it is written as one (seconds,
    counts); anything else, a serial number with leading zeros included, stays text."""
    try:
        if str(int(value)) == value:
            return int(value)
    except ValueError:
        pass
    try:
        return float(value) if any(ch in value for ch in ".eE") else value
    except ValueError:
        return value


def _serve(name: str, state_dir: str, host: str, port: int, faults: dict[str, str], seed: int | None,
           options: dict[str, Any]) -> None:
    """Start emulator *name*, serve until SIGINT/SIGTERM (a second one exits at once), then stop it."""
    from worker.signals import on_stop

    stop = threading.Event()
    with on_stop(stop):
        running = start_emulator(name, state_dir, host=host, port=port, faults=faults, seed=seed, **options)
        try:
            click.echo(f"{name} emulator at {running.url}, state in {state_dir}", err=True)
            stop.wait()
        finally:
            running.stop()


@click.group()
def emulator() -> None:
    """Emulated registers: the Shtrih-M wire protocol on TCP, operator actions, the fiscal journal."""


@emulator.command("serve")
@click.argument("name", type=click.Choice(emulator_names()))
@click.argument("state_dir", type=click.Path(file_okay=False))
@opt("--host", default=EMULATOR_HOST, help="address to listen on")
@opt("--port", type=int, default=0, help="TCP port (0: any free port, printed at start)")
@opt("--fault", "faults", multiple=True, metavar="NAME=VALUE", help=_FAULT_HELP)
@opt("--seed", type=int, default=None, help="seed for random faults")
@opt("--option", "options", multiple=True, metavar="KEY=VALUE",
     help="an emulator-specific option, e.g. serial=0000000000000002 or answer_delay_s=0.5 (repeatable)")
def serve(name: str, state_dir: str, host: str, port: int, faults: tuple[str, ...], seed: int | None,
          options: tuple[str, ...]) -> None:
    """Serve emulator NAME (one of the drivers' emulators) until interrupted (SIGINT/SIGTERM)."""
    extra = {k: _typed(v) for k, v in _pairs(options, "--option").items()}
    _serve(name, state_dir, host, port, _pairs(faults, "--fault"), seed, extra)


@emulator.command("shtrih")
@click.argument("state_dir", type=click.Path(file_okay=False))
@opt("--host", default=EMULATOR_HOST, help="address to listen on")
@opt("--port", type=int, default=SHTRIH_PORT, help="TCP port (Shtrih-M's usual one is 7778)")
@opt("--serial", default=SHTRIH_SERIAL, help="the register's serial number")
@opt("--fault", "faults", multiple=True, metavar="NAME=VALUE", help=_FAULT_HELP)
@opt("--seed", type=int, default=None, help="seed for random faults")
@opt("--answer-delay-s", type=float, default=0.0, help="delay every answer (a slow register)")
@opt("--z-report-delay-s", type=float, default=0.0, help="a slow Z report")
def shtrih(state_dir: str, host: str, port: int, serial: str, faults: tuple[str, ...], seed: int | None,
           answer_delay_s: float, z_report_delay_s: float) -> None:
    """Serve an emulated Shtrih-M register on TCP until interrupted (same as ``serve shtrih``)."""
    _serve("shtrih", state_dir, host, port, _pairs(faults, "--fault"), seed,
           dict(serial=serial, answer_delay_s=answer_delay_s, z_report_delay_s=z_report_delay_s))


@emulator.command("journal")
@click.argument("state_dir", type=click.Path(file_okay=False, exists=True))
def journal(state_dir: str) -> None:
    """Print the emulated register's fiscal documents, one JSON object per line."""
    from kkt_drivers.emulator.model import RegisterModel

    for doc in RegisterModel(state_dir).documents():
        click.echo(json.dumps(doc, ensure_ascii=False))


@emulator.command("paper")
@click.argument("state_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("action", type=click.Choice(["load", "out"]))
def paper(state_dir: str, action: str) -> None:
    """The operator loads paper, or paper runs out (until loaded)."""
    from kkt_drivers.emulator.model import RegisterModel

    model = RegisterModel(state_dir)
    model.load_paper() if action == "load" else model.take_paper()
    click.echo(f"paper {action}")


@emulator.command("tamper-counter")
@click.argument("state_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("operation", type=click.Choice(["sale", "sale_refund", "expense", "expense_refund"]))
@click.argument("amount")
@click.option("--payment", type=click.Choice(["cash", "electronic", "prepaid", "credit", "other"]), default=None,
              help="the payment type whose counter drifts too")
def tamper_counter(state_dir: str, operation: str, amount: str, payment: str | None) -> None:
    """A fault for demonstrations and tests: the register's OWN shift counter of OPERATION drifts by
    AMOUNT (e.g. 1.00 or -1.00), while its documents stay as they are; ``report shift`` must show it."""
    from decimal import Decimal, InvalidOperation

    from kkt_drivers.emulator.model import RegisterModel

    try:
        Decimal(amount)
    except InvalidOperation:
        raise click.BadParameter(f"not an amount: {amount!r}", param_hint="AMOUNT") from None
    RegisterModel(state_dir).tamper_counter(operation, amount, payment)
    click.echo(f"counter {operation} drifts by {amount}" + (f" ({payment})" if payment else ""))
