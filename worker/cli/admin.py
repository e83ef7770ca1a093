"""``backfill``, ``resend``, ``reconcile``: the admin's repairs (the worker's lanes do the printing)."""
from __future__ import annotations

import sys

import click

from worker import app
from worker.cli.options import Ctx, confirm_options, confirmed, opt, pass_ctx
from worker.ledger.states import RESENDABLE, State
from worker.receipts.plan import Stage


@click.command()
@opt("--from-id", type=int, required=True, help="first shop payment id")
@opt("--to-id", type=int, required=True, help="last shop payment id (inclusive)")
@confirm_options
@pass_ctx
def backfill(c: Ctx, from_id: int, to_id: int, dry_run: bool, yes: bool) -> None:
    """Ingest a range of shop ids the cursor passed (never re-fiscalizes a payment already in the ledger)."""
    if to_id < from_id:
        raise click.BadParameter("--to-id must be >= --from-id")
    known = c.ledger.known_source_ids(from_id, to_id)
    if dry_run:
        src = app.open_shop_source(c.settings)
        try:
            rows = src.fetch_by_ids(list(range(from_id, to_id + 1)))
        finally:
            src.close()
        for row in rows:
            click.echo(f"payment {row.id}: " + ("skipped (already in the ledger)" if row.id in known
                                                 else "would be ingested and fiscalized"))
        click.echo(f"dry run: {sum(r.id not in known for r in rows)} of {len(rows)} shop rows in {from_id}..{to_id} "
                   "would be added; nothing changed")
        return
    confirmed(f"ingest shop ids {from_id}..{to_id} ({len(known)} already in the ledger are skipped)?", yes=yes)
    src = app.open_shop_source(c.settings)
    ing = app.build_ingestor(c.settings, c.ledger, src)
    with click.progressbar(length=to_id - from_id + 1, label="backfill", file=sys.stderr) as bar:
        added = ing.backfill(from_id, to_id, progress=bar.update)
    src.close()
    click.echo(f"added {added} payments in {from_id}..{to_id}; the worker fiscalizes them")


@click.command()
@opt("--id", "ids", multiple=True, type=int, help="shop payment id (repeatable)")
@opt("--state", "states", multiple=True, type=click.Choice([s.value for s in RESENDABLE]),
     help="every receipt in this state (repeatable)")
@opt("--reviewed", is_flag=True, allow_from_autoenv=False, show_envvar=False,
     help="also requeue needs_review receipts: only after you checked on the register that no document exists")
@opt("--no-refetch", is_flag=True, help="rebuild from the stored snapshot instead of re-reading the shop row")
@confirm_options
@pass_ctx
def resend(c: Ctx, ids: tuple[int, ...], states: tuple[str, ...], reviewed: bool, no_refetch: bool,
           dry_run: bool, yes: bool) -> None:
    """Requeue rejected/failed payments, re-reading the (fixed) shop row and rebuilding the receipt."""
    allowed = {s.value for s in RESENDABLE} | ({State.NEEDS_REVIEW.value} if reviewed else set())
    if not ids and not states:
        raise click.UsageError("name payments with --id or a --state")
    rows = c.ledger.list_receipts(states=states or sorted(allowed), source_ids=ids)
    targets = sorted({r.source_id for r in rows if r.state.value in allowed})
    skipped = sorted({r.source_id for r in rows if r.state.value not in allowed} - set(targets))
    # a payment that an admin already settled with a correction receipt must not be printed again
    corrected = {sid for sid in targets if any(
        r.stage == Stage.CORRECTION and not r.rejected for r in c.ledger.list_receipts(source_ids=[sid]))}
    for sid in sorted(corrected):
        click.echo(f"payment {sid}: not resent — it has a correction receipt (see ledger show {sid})")
    targets = [sid for sid in targets if sid not in corrected]
    for sid in skipped:
        click.echo(f"payment {sid}: not resent (its state is not one of {', '.join(sorted(allowed))})")
    if dry_run:
        for sid in targets:
            click.echo(f"payment {sid}: would be rebuilt from the {'stored snapshot' if no_refetch else 'shop row'} "
                       "and queued")
        click.echo(f"dry run: {len(targets)} payment(s) would be requeued; nothing changed")
        return
    if targets:
        confirmed(f"requeue {len(targets)} payment(s) for printing?", yes=yes)
    planner = app.build_planner(c.settings, c.ledger)   # with routing: a fixed group setting takes effect
    current = app.current_shop_rows(c.settings, c.ledger, targets, refetch=not no_refetch)
    queued = 0
    for sid in targets:
        n = c.ledger.replan(sid, current[sid], planner.plan(current[sid]))
        queued += n
        click.echo(f"payment {sid}: {'requeued' if n else 'still rejected: see ledger show ' + str(sid)}")
    click.echo(f"{queued} receipts queued")


@click.command()
@opt("--register", "register", default=None, help="only this register")
@pass_ctx
def reconcile(c: Ctx, register: str | None) -> None:
    """Resolve receipts left "sending" against the registers' documents (run with the worker stopped)."""
    from worker.cli.registers import held_register
    from worker.fiscal.recovery import Reconciler, RegisterUnreachable
    from worker.ledger.runlock import RunLock

    with RunLock(c.ledger):
        for r in c.settings.enabled_registers():
            if register and r.name != register:
                continue
            # the lease too: the run lock alone has holes (a PostgreSQL session can end under a worker)
            with held_register(c, r, "reconcile") as (drv, keeper):
                rec = Reconciler(r.name, drv, c.ledger, c.settings.retry, fence=keeper.current)
                for row in c.ledger.sending(r.name):
                    try:
                        click.echo(f"{row.tag}: {rec.reconcile(row).value}")
                    except RegisterUnreachable as exc:
                        click.echo(f"{row.tag}: register unreachable, still sending ({exc})")
