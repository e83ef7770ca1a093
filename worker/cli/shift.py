"""``shift status|open|close`` and ``report x``: one register, by hand."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import click

from kkt_drivers.base import Driver
from worker.cli.options import Ctx, pass_ctx, register_option


@contextmanager
def _driver(c: Ctx, register: str | None) -> Iterator[Driver]:
    """The connected driver of the named register (or the only one), under the register's lease:
    never a second link to a register a live worker talks to."""
    from worker.cli.registers import choose_register, held_register

    with held_register(c, choose_register(c, register), "shift") as (drv, _):
        yield drv


@click.group()
def shift() -> None:
    """Open or close a register's shift, or show it."""


@shift.command("status")
@register_option
@pass_ctx
def shift_status(c: Ctx, register: str | None) -> None:
    """Shift number, when it opened, whether it is over 24 h."""
    with _driver(c, register) as drv:
        st = drv.status()
    click.echo(f"shift #{st.shift_number} {'open' if st.shift_open else 'closed'}"
               f"{' since ' + str(st.shift_opened_at) if st.shift_open else ''}"
               f"{' — OVER 24 HOURS' if st.shift_expired else ''}; last FD {st.last_fd_number}")


@shift.command("open")
@register_option
@pass_ctx
def shift_open(c: Ctx, register: str | None) -> None:
    """Open a shift."""
    with _driver(c, register) as drv:
        doc = drv.open_shift(c.settings.shifts.cashier)
    click.echo(f"shift #{doc.shift_number} opened (FD {doc.fd_number})")


@shift.command("close")
@register_option
@pass_ctx
def shift_close(c: Ctx, register: str | None) -> None:
    """Close the shift (Z report)."""
    with _driver(c, register) as drv:
        doc = drv.close_shift(c.settings.shifts.cashier)
    click.echo(f"shift #{doc.shift_number} closed, Z report FD {doc.fd_number}")


@click.group()
def report() -> None:
    """Register reports."""


@report.command("x")
@register_option
@pass_ctx
def report_x(c: Ctx, register: str | None) -> None:
    """Print an X report (no fiscal document)."""
    with _driver(c, register) as drv:
        drv.x_report()
    click.echo("X report printed")
