"""``kkt-worker emulator …``: run an emulated register a person (or a real client) can talk to."""
from __future__ import annotations

import json
from typing import Any, Callable

import click


def register_emulator_commands(cli: click.Group, opt: Callable[..., Any]) -> None:
    """Attach the ``emulator`` group to *cli*."""

    @cli.group()
    def emulator() -> None:
        """Emulated registers: the Shtrih-M wire protocol on TCP, operator actions, the fiscal journal."""

    @emulator.command("shtrih")
    @click.argument("state_dir", type=click.Path(file_okay=False))
    @opt("--host", default="127.0.0.1", help="address to listen on")
    @opt("--port", type=int, default=7778, help="TCP port (Shtrih-M's usual one is 7778)")
    @opt("--serial", default="0000000000000001", help="the register's serial number")
    @opt("--fault", "faults", multiple=True, metavar="NAME=VALUE",
         help="inject a fault: probability or first:N, e.g. lose_reply_after_close=0.05 (repeatable)")
    @opt("--seed", type=int, default=None, help="seed for random faults")
    @opt("--answer-delay-s", type=float, default=0.0, help="delay every answer (a slow register)")
    @opt("--z-report-delay-s", type=float, default=0.0, help="a slow Z report")
    def shtrih(state_dir: str, host: str, port: int, serial: str, faults: tuple[str, ...], seed: int | None,
               answer_delay_s: float, z_report_delay_s: float) -> None:
        """Serve an emulated Shtrih-M register on TCP until interrupted (SIGINT/SIGTERM)."""
        import signal

        from kkt_drivers.shtrih.server import serve

        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            options = dict(f.split("=", 1) for f in faults)
        except ValueError as exc:
            raise click.BadParameter("use NAME=VALUE", param_hint="--fault") from exc
        click.echo(f"Shtrih-M emulator on {host}:{port}, state in {state_dir}", err=True)
        serve(state_dir, host, port, serial=serial, faults_options=options, seed=seed,
              answer_delay_s=answer_delay_s, z_report_delay_s=z_report_delay_s)

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
