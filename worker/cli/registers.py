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
from worker.cli.options import Ctx, confirm_options, confirmed, opt, pass_ctx, register_option
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


def adopt_plan(register: str, accounted: int, from_fd: int | None, last: int, reads_documents: bool) -> list[str]:
    """What ``adopt`` will do, line by line, for a ledger accounted up to FD *accounted* and a register
    whose last FD is *last* (shown by ``--dry-run`` and before the confirmation)."""
    start = from_fd if from_fd is not None else accounted + 1
    if not reads_documents:
        return [f"the register cannot read documents back: the ledger is set accounted up to FD {last}, "
                "nothing is examined (recovery asks the register by tag instead)"]
    lines: list[str] = []
    if from_fd is not None and from_fd - 1 > accounted:
        lines.append(f"FD {accounted + 1}..{from_fd - 1} count as accounted for WITHOUT being read "
                     "(use --from-fd only if nothing of ours was printed there)")
    elif from_fd is not None and from_fd - 1 < accounted:
        lines.append(f"FD {from_fd}..{min(accounted, last)} were accounted for already: examined again "
                     "(documents recorded before are skipped)")
    if last < start - 1:
        lines.append(f"refused: the register's last FD {last} is below FD {start - 1}: is this the right register?")
    else:
        lines.append(f"{last - start + 1} document(s) to read back (a real register reads about one per 0.3-1 s)")
    return lines


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
@confirm_options
@pass_ctx
def adopt(c: Ctx, register: str | None, from_fd: int | None, dry_run: bool, yes: bool) -> None:
    """Examine a register's documents the ledger has not accounted for, without a length limit:
    ours become done (never printed again), others are recorded as foreign. Resumable.

    ``--dry-run`` reads only the register's status (under its lease, like adopt itself) and says what
    would be examined or skipped; nothing is read back or recorded."""
    from worker.fiscal.adoption import Scanner, ScanRefused

    reg = choose_register(c, register)
    with held_register(c, reg, "adopt") as (drv, keeper):
        def progress(pos: int, last: int, counts: Counter) -> None:
            click.echo(f"  FD {pos} of {last}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

        scanner = Scanner(reg.name, drv, c.ledger, keeper.current, max_documents=0,
                          keep_lease=keeper.ensure, progress=progress)
        status = drv.status()
        accounted = scanner.start_point(status.fn_serial)
        start = from_fd if from_fd is not None else accounted + 1
        plan = adopt_plan(reg.name, accounted, from_fd, status.last_fd_number, drv.reads_documents)
        if dry_run:
            click.echo(f"register {reg.name} FN {status.fn_serial}: would examine FD {start}..{status.last_fd_number}")
            for line in plan:
                click.echo(f"  {line}")
            click.echo(f"dry run: nothing read back or recorded; the ledger stays accounted up to FD {accounted}")
            return
        click.echo(f"register {reg.name} FN {status.fn_serial}: examining FD {start}..{status.last_fd_number}")
        for line in plan:
            click.echo(f"  {line}")
        confirmed(f"examine FD {start}..{status.last_fd_number} of register {reg.name} (ours become done and are "
                  "never printed again)?", yes=yes, effect="this settles receipts from the register's documents")
        keeper.ensure()               # a long pause at the prompt: renew (or lose) the lease before writing
        try:
            counts = scanner.sync(status, from_fd=from_fd, bounded=False)
        except ScanRefused as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"done: watermark FD {status.last_fd_number}; " +
               (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing new"))
