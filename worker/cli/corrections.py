"""``kkt-worker correction missed|reverse``: parse, gather, print.

The rules are :mod:`worker.receipts.corrections`; the lanes issue the queued receipts.
"""
from __future__ import annotations

import click

from worker import app
from worker.cli.options import Ctx, confirm_options, confirmed, opt, pass_ctx
from worker.receipts.corrections import CorrectionRefused, plan_missed, plan_reverse, wrong_receipt
from worker.shop.rows import ShopPayment


def _fresh_row(c: Ctx, source_id: int) -> ShopPayment | None:
    """The shop row as it is now (the admin fixed it), else the ledger's snapshot."""
    return app.current_shop_rows(c.settings, c.ledger, [source_id])[source_id]


@click.group()
def correction() -> None:
    """Correction receipts: for a missed receipt, or to reverse and redo a wrong one (queued for the worker)."""


@correction.command()
@opt("--id", "source_id", type=int, required=True, help="shop payment id that missed its receipt")
@confirm_options
@pass_ctx
def missed(c: Ctx, source_id: int, dry_run: bool, yes: bool) -> None:
    """Queue a self-made correction (1173 = 0, 1178 = payment date) for a payment without a receipt."""
    from worker.ingest.planner import Planner

    existing = c.ledger.receipts_of(source_id)
    try:
        payment = None if any(r.issued for r in existing) else _fresh_row(c, source_id)
        planner = Planner(c.ledger, app.receipt_config(c.settings))
        rows, day = plan_missed(source_id, existing, payment, planner.plan)
    except CorrectionRefused as exc:
        raise click.ClickException(str(exc)) from None
    if dry_run:
        for r in rows:
            click.echo(f"payment {source_id}: would queue correction {r.tag} (total {r.receipt.total}, 1178 = {day})")
        click.echo("dry run: nothing changed")
        return
    confirmed(f"queue {len(rows)} correction receipt(s) for payment {source_id}?", yes=yes)
    c.ledger.add_planned(source_id, rows, payment=payment)
    for r in rows:
        click.echo(f"payment {source_id}: correction {r.tag} queued (total {r.receipt.total}, 1178 = {day}, "
                   f"replaces {r.corrects_tag or 'no receipt'})")


@correction.command()
@opt("--id", "source_id", type=int, required=True, help="shop payment id with the wrong receipt")
@opt("--tag", "wrong_tag", default=None, help="the wrong receipt's tag (1192) when the payment has several")
@confirm_options
@pass_ctx
def reverse(c: Ctx, source_id: int, wrong_tag: str | None, dry_run: bool, yes: bool) -> None:
    """Queue a reverse correction of a wrong receipt, then a correct one from the fixed shop row."""
    from worker.ingest.planner import Planner

    existing = c.ledger.receipts_of(source_id)
    try:
        wrong = wrong_receipt(source_id, existing, wrong_tag, lambda r: c.ledger.corrections_link(r.id)[0])
        cfg = app.receipt_config(c.settings)
        pair = plan_reverse(source_id, existing, wrong, _fresh_row(c, source_id), cfg,
                            planned=Planner(c.ledger, cfg).plan,
                            already_refunded=lambda: c.ledger.refunded_quantities(source_id))
    except CorrectionRefused as exc:
        raise click.ClickException(str(exc)) from None
    rev, fix = pair.rows
    if dry_run:
        click.echo(f"payment {source_id}: would queue reverse correction {rev.tag} of {wrong.tag} "
                   f"(total {pair.wrong_total}) and correction {fix.tag} (total {pair.right_total}); nothing changed")
        return
    confirmed(f"queue a reverse correction of {wrong.tag} and a new correction for payment {source_id}?", yes=yes)
    c.ledger.add_planned(source_id, list(pair.rows))
    click.echo(f"payment {source_id}: reverse correction {rev.tag} of {wrong.tag} (FD {wrong.fd_number}, "
               f"FP {wrong.fiscal_sign}, total {pair.wrong_total}) queued, then correction {fix.tag} "
               f"(total {pair.right_total}); 1178 = {pair.day}")
