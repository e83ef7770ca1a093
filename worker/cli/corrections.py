"""``kkt-worker correction missed|reverse``: correction receipts (54-FZ art. 4.3, fz54-receipts.md §5.2).

The CLI never talks to a register: it only adds receipts rows (stage "correction") to the payment in
the ledger, and the worker's lanes issue them like any other receipt (intent → fiscalize → outcome,
reconciled by tag after a crash).

* ``missed``  — the payment never got its receipt (e.g. it was rejected for bad data, or failed for
  days): a self-made correction (1173 = 0) with 1178 = the payment's date, built from the (fixed)
  shop row. Refused while any receipt of the payment is done, queued or in flight.
* ``reverse`` — a receipt was issued with wrong data: a reverse correction (opposite 1054, repeating the
  wrong receipt exactly) then a correct correction built from the fixed shop row. The lane issues
  the second only after the first is done.

In the reverse pair, 1192 carries the wrong receipt's fiscal sign (ФПД), as the tax office expects,
on both documents; the ledger keeps its own unique tags (``C<id>``, ``C<id>.2``) and links both rows
to the wrong receipt (``corrects_tag``, ``corrects_fiscal_sign``). Recovery still finds each document
unambiguously: it matches the document's 1192 *and* its operation (the reverse has the opposite
1054), and the lane issues the second only after the first is done, so the two never share a
reconciliation window. A ``missed`` correction carries our own tag in 1192.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import click

from worker.ledger.states import State
from worker.ledger.store import PlannedRow, ReceiptRecord
from worker.receipts.build import build_settlement, correction_of, make_tag, reverse_correction_of
from worker.receipts.rules import InvalidPayment, parse_paid_at
from worker.shop.rows import ShopPayment

#: states of an earlier receipt that mean "no receipt was issued" (a correction may replace it)
_NOT_ISSUED = (State.REJECTED, State.FAILED)


def _fresh_row(c: Any, source_id: int) -> ShopPayment | None:
    """The shop row as it is now (the admin fixed it), else the ledger's snapshot."""
    from worker.wiring import current_shop_rows

    return current_shop_rows(c.settings, c.ledger, [source_id])[source_id]


def _next_part(recs: list[ReceiptRecord]) -> int:
    return max((r.part for r in recs if r.stage == "correction"), default=0) + 1


def _payment_day(payment: ShopPayment) -> dt.date:
    try:
        return parse_paid_at(payment.paid_at, "payments.paid_at")
    except InvalidPayment as exc:
        raise click.ClickException(f"payment {payment.id}: {exc}") from None


def register_correction_commands(cli: click.Group, pass_ctx: Any, opt: Callable[..., Any]) -> None:
    """Attach the ``correction`` group to *cli*."""

    @cli.group()
    def correction() -> None:
        """Correction receipts: for a missed receipt, or to reverse and redo a wrong one (queued for the worker)."""

    @correction.command()
    @opt("--id", "source_id", type=int, required=True, help="shop payment id that missed its receipt")
    @pass_ctx
    def missed(c: Any, source_id: int) -> None:
        """Queue a self-made correction (1173 = 0, 1178 = payment date) for a payment without a receipt."""
        from worker.ingest.planner import Planner
        from worker.wiring import receipt_config

        recs = c.ledger.receipts_of(source_id)
        issued = [r for r in recs if r.state not in _NOT_ISSUED]
        if issued:
            r = issued[0]
            raise click.ClickException(
                f"payment {source_id} already has receipt {r.tag} ({r.state.value}); "
                "for a wrong receipt use `correction reverse`")
        payment = _fresh_row(c, source_id)
        if payment is None:
            raise click.ClickException(f"payment {source_id} is neither in the shop nor in the ledger")
        planned = Planner(c.ledger, receipt_config(c.settings)).plan(payment)
        bad = [p.error for p in planned if p.receipt is None]
        if bad:
            raise click.ClickException(f"payment {source_id} still cannot become a receipt: {bad[0]}")
        day = _payment_day(payment)
        part = _next_part(recs)
        rows = []
        for n, p in enumerate(planned):
            tag = make_tag(source_id, "correction", part + n)
            rows.append(PlannedRow("correction", part + n, tag,
                                   receipt=correction_of(p.receipt, tag=tag, corrected_on=day),  # type: ignore[arg-type]
                                   corrects_tag=p.tag if any(r.tag == p.tag for r in recs) else None))
        c.ledger.add_planned(source_id, rows, payment=payment)
        for r in rows:
            click.echo(f"payment {source_id}: correction {r.tag} queued (total {r.receipt.total}, 1178 = {day}, "
                       f"replaces {r.corrects_tag or 'no receipt'})")

    @correction.command()
    @opt("--id", "source_id", type=int, required=True, help="shop payment id with the wrong receipt")
    @opt("--tag", "wrong_tag", default=None, help="the wrong receipt's tag (1192) when the payment has several")
    @pass_ctx
    def reverse(c: Any, source_id: int, wrong_tag: str | None) -> None:
        """Queue a reverse correction of a wrong receipt, then a correct one from the fixed shop row."""
        from worker.ingest.planner import Planner, as_rows
        from worker.wiring import receipt_config

        recs = c.ledger.receipts_of(source_id)
        candidates = [r for r in recs if (r.tag == wrong_tag if wrong_tag else
                                          r.state is State.DONE and r.stage != "correction")]
        if len(candidates) != 1:
            tags = ", ".join(f"{r.tag} ({r.state.value})" for r in recs) or "none"
            raise click.ClickException(f"payment {source_id}: name the wrong receipt with --tag (its receipts: {tags})")
        wrong = candidates[0]
        if wrong.state is not State.DONE or wrong.fiscal_sign is None:
            raise click.ClickException(f"receipt {wrong.tag} is {wrong.state.value}, not issued: nothing to reverse")
        for r in recs:
            if r.stage == "correction" and r.state is not State.REJECTED \
                    and c.ledger.corrections_link(r.id)[0] == wrong.tag:
                raise click.ClickException(f"receipt {wrong.tag} is already being corrected by {r.tag}")
        payment = _fresh_row(c, source_id)
        if payment is None:
            raise click.ClickException(f"payment {source_id} is neither in the shop nor in the ledger")
        cfg = receipt_config(c.settings)
        try:
            if wrong.stage == "settlement":
                # the settlement's date is the delivery: the day the wrong settlement was issued
                day = (wrong.fiscal_at or dt.datetime.now()).date()
                planned = list(as_rows(build_settlement(payment, cfg, delivered_at=wrong.fiscal_at,
                                                        already_refunded=c.ledger.refunded_quantities(source_id))))
            else:
                day = _payment_day(payment)
                planned = list(Planner(c.ledger, cfg).plan(payment))
        except InvalidPayment as exc:
            raise click.ClickException(f"payment {source_id} still cannot become a receipt: {exc}") from None
        right = next((p for p in planned if (p.stage, p.part) == (wrong.stage, wrong.part)), None)
        if right is None or right.receipt is None:
            reason = right.error if right else f"the fixed row has no {wrong.stage} part {wrong.part}"
            raise click.ClickException(f"payment {source_id} still cannot become a receipt: {reason}")
        old = wrong.receipt()
        if (right.receipt.items, right.receipt.payments, right.receipt.operation) == (old.items, old.payments,
                                                                                     old.operation):
            raise click.ClickException(f"the shop row of payment {source_id} still gives the same receipt as "
                                       f"{wrong.tag}; fix the row first")
        part = _next_part(recs)
        rev_tag, fix_tag = make_tag(source_id, "correction", part), make_tag(source_id, "correction", part + 1)
        link = {"corrects_tag": wrong.tag, "corrects_fiscal_sign": wrong.fiscal_sign}
        fp_tag = str(wrong.fiscal_sign)  # 1192 of both documents: the ФПД of the receipt being corrected
        rows = [
            PlannedRow("correction", part, rev_tag, receipt=reverse_correction_of(old, tag=fp_tag, corrected_on=day),
                       **link),
            PlannedRow("correction", part + 1, fix_tag,
                       receipt=correction_of(right.receipt, tag=fp_tag, corrected_on=day), **link),
        ]
        c.ledger.add_planned(source_id, rows)
        click.echo(f"payment {source_id}: reverse correction {rev_tag} of {wrong.tag} (FD {wrong.fd_number}, "
                   f"FP {wrong.fiscal_sign}, total {old.total}) queued, then correction {fix_tag} "
                   f"(total {right.receipt.total}); 1178 = {day}")
