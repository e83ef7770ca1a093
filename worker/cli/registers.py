"""Admin commands that talk to a register hold its lease, so they never share a link with a live worker.

``held_register`` takes the register's lease (refusing with the holder's name while a live worker or
another command holds it), opens the driver, and gives the lease back at the end. ``adopt`` is the
admin's decision for a register whose history the ledger has not examined.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator

import click

from worker import app
from worker.cli.options import Ctx, opt, pass_ctx, register_option
from worker.fiscal.lease import LeaseKeeper
from worker.ledger.leases import holder_id
from worker.settings import RegisterSettings


def choose_register(c: Any, register: str | None) -> RegisterSettings:
    """The register named *register*, or the only one configured."""
    chosen = app.registers_named(c.settings, register)
    if not chosen:
        raise click.BadParameter(f"no register named {register!r}")
    if len(chosen) > 1:
        raise click.UsageError("several registers are configured: name one with --register")
    return chosen[0]


@contextmanager
def held_register(c: Any, reg: RegisterSettings, role: str) -> Iterator[tuple[Any, LeaseKeeper]]:
    """Hold *reg*'s lease as ``admin-<role>`` and yield (connected driver, lease keeper)."""
    keeper = LeaseKeeper(c.ledger, reg.name, holder_id(f"admin-{role}"), c.settings.lease.ttl_s)
    if not keeper.ensure():
        assert keeper.held_by is not None
        raise keeper.held_by          # LockHeld: exit status 75, the holder named
    try:
        with app.open_register(reg) as drv:
            yield drv, keeper
    finally:
        keeper.release()


@click.command()
@register_option
@opt("--from-fd", type=int, default=None,
     help="examine documents from this FD number on (documents before it count as accounted for); "
          "default: from the ledger's watermark")
@pass_ctx
def adopt(c: Ctx, register: str | None, from_fd: int | None) -> None:
    """Examine a register's documents the ledger has not accounted for, without a length limit:
    ours become done (never printed again), others are recorded as foreign. Resumable."""
    from worker.fiscal.adoption import Scanner, ScanRefused

    reg = choose_register(c, register)
    with held_register(c, reg, "adopt") as (drv, keeper):
        def progress(pos: int, last: int, counts: Counter) -> None:
            click.echo(f"  FD {pos} of {last}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

        scanner = Scanner(reg.name, drv, c.ledger, keeper.current, max_documents=0,
                          keep_lease=keeper.ensure, progress=progress)
        status = drv.status()
        start = from_fd if from_fd is not None else scanner.start_point(status.fn_serial) + 1
        click.echo(f"register {reg.name} FN {status.fn_serial}: examining FD {start}..{status.last_fd_number}")
        try:
            counts = scanner.sync(status, from_fd=from_fd, bounded=False)
        except ScanRefused as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"done: watermark FD {status.last_fd_number}; " +
               (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing new"))
