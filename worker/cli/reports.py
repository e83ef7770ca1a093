"""``report daily|shift|range``: the accountant's totals, reconciled with the registers.

Days are the shop's local days (``receipts.timezone``). Every report shows sales, refunds,
corrections and net; sums per VAT rate and payment type; per register and shift; counts by state;
and every amount that has **no receipt** (rejected, failed, needing review, still queued) with its
reason. ``report shift --reconcile`` reads the shift's documents back from the register and lists
every difference with the ledger, payment by payment.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import click

from kkt_drivers.base import Driver
from kkt_drivers.receipt import DocumentKind, FiscalDocument
from worker import app
from worker.cli import exitcodes
from worker.cli.options import Ctx, opt, pass_ctx, register_option
from worker.defaults import RECONCILE_MAX_DOCUMENTS
from worker.ledger.records import ReceiptRecord
from worker.reports.reconcile import Difference, reconcile_shift
from worker.reports.totals import Totals, summarize

OUTPUT = opt("--output", "output", type=click.Choice(["text", "json"]), default="text", help="output format")
#: the most receipts one report reads (a larger period: several reports, or ledger export)
MAX_REPORT_ROWS = 1_000_000


def _zone(c: Ctx) -> str:
    return app.receipt_config(c.settings).timezone


def _today(c: Ctx) -> dt.date:
    return dt.datetime.now(ZoneInfo(_zone(c))).date()


def _money(v: Decimal | None) -> str:
    return "—" if v is None else f"{v:,.2f}".replace(",", " ")


def totals_json(t: Totals) -> dict[str, Any]:
    """Totals as JSON-safe data (money as exact strings)."""
    m = lambda v: None if v is None else f"{v:.2f}"  # noqa: E731
    return {
        "sales": m(t.sales), "refunds": m(t.refunds), "corrections": m(t.corrections), "net": m(t.net),
        "receipts_done": t.count_done,
        "by_state": {s: {"count": n, "amount": m(a)} for s, (n, a) in t.by_state.items()},
        "by_vat": {k: m(v) for k, v in t.by_vat.items()},
        "by_payment_type": {k: m(v) for k, v in t.by_payment_type.items()},
        "by_shift": [{"register": s.register, "shift": s.shift, "receipts": s.count,
                      "by_operation": {k: m(v) for k, v in s.by_operation.items()}} for s in t.by_shift.values()],
        "without_receipt": {"amount": m(t.unreceipted_amount), "payments": [
            {"payment_id": u.source_id, "tag": u.tag, "state": u.state, "amount": m(u.amount), "reason": u.reason}
            for u in t.unreceipted]},
    }


def print_totals(title: str, t: Totals) -> None:
    click.echo(title)
    click.echo(f"  sales {_money(t.sales)}   refunds {_money(t.refunds)}   corrections {_money(t.corrections)}"
               f"   net {_money(t.net)}   ({t.count_done} receipts)")
    if t.by_vat:
        click.echo("  by VAT rate:     " + ", ".join(f"{k} {_money(v)}" for k, v in t.by_vat.items()))
    if t.by_payment_type:
        click.echo("  by payment type: " + ", ".join(f"{k} {_money(v)}" for k, v in t.by_payment_type.items()))
    for s in t.by_shift.values():
        ops = ", ".join(f"{k} {_money(v)}" for k, v in sorted(s.by_operation.items()))
        click.echo(f"  register {s.register} shift {s.shift}: {s.count} receipts ({ops})")
    click.echo("  by state:        " + ", ".join(f"{k} {n} ({_money(a)})" for k, (n, a) in t.by_state.items()))
    if t.unreceipted:
        click.echo(f"  WITHOUT A RECEIPT: {_money(t.unreceipted_amount)} in {len(t.unreceipted)} receipt(s)")
        for u in t.unreceipted:
            click.echo(f"    payment {u.source_id} {u.tag} {u.state} {_money(u.amount)}: {u.reason or ''}")


def _period(c: Ctx, first: dt.date, last: dt.date, output: str) -> None:
    rows = c.reader.list_receipts(day_from=first, day_to=last, limit=MAX_REPORT_ROWS)
    t = summarize(rows)
    zone = _zone(c)
    if output == "json":
        click.echo(json.dumps({"from": first.isoformat(), "to": last.isoformat(), "zone": zone, **totals_json(t)},
                              ensure_ascii=False, indent=2))
    else:
        print_totals(f"{first}…{last} ({zone})", t)


@click.command("daily")
@opt("--day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="the shop's local day (default: today)")
@OUTPUT
@pass_ctx
def daily(c: Ctx, day: dt.datetime | None, output: str) -> None:
    """Totals of one day in the shop's time zone."""
    d = day.date() if day else _today(c)
    _period(c, d, d, output)


@click.command("range")
@opt("--from", "first", type=click.DateTime(["%Y-%m-%d"]), required=True, help="first local day")
@opt("--to", "last", type=click.DateTime(["%Y-%m-%d"]), required=True, help="last local day (inclusive)")
@OUTPUT
@pass_ctx
def period(c: Ctx, first: dt.datetime, last: dt.datetime, output: str) -> None:
    """Totals of a range of local days."""
    if last < first:
        raise click.BadParameter("--to must not be before --from")
    _period(c, first.date(), last.date(), output)


@click.command("shift")
@register_option
@opt("--shift", "shift_no", type=int, required=True, help="shift number on that register")
@opt("--reconcile/--no-reconcile", default=True, help="read the shift's documents back from the register")
@OUTPUT
@pass_ctx
def shift_report(c: Ctx, register: str | None, shift_no: int, reconcile: bool, output: str) -> None:
    """One register's shift: totals, and every difference with the register's own documents (exit 1 if any)."""
    from worker.cli.shift import _driver

    chosen = app.registers_named(c.settings, register)
    if len(chosen) != 1:
        raise click.UsageError("name one register with --register")
    name = chosen[0].name
    rows = [r for r in c.reader.list_receipts(limit=MAX_REPORT_ROWS)
            if r.register == name and r.shift_number == shift_no]
    t = summarize(rows)
    diffs: list[Difference] | None = None
    if reconcile:
        with _driver(c, name) as drv:
            diffs = reconcile_shift(rows, shift_documents(drv, shift_no, rows))
    if output == "json":
        click.echo(json.dumps({"register": name, "shift": shift_no, **totals_json(t), "differences": None if diffs is None
                               else [d.__dict__ | {"ledger_total": None if d.ledger_total is None else str(d.ledger_total),
                                                   "register_total": None if d.register_total is None
                                                   else str(d.register_total)} for d in diffs]},
                              ensure_ascii=False, indent=2, default=str))
    else:
        print_totals(f"register {name}, shift {shift_no}", t)
        if diffs is not None:
            click.echo("  reconciled with the register: " + ("no differences" if not diffs else f"{len(diffs)} difference(s)"))
            for d in diffs:
                click.echo(f"    {d.kind}: FD {d.fd_number} tag {d.tag} ledger {_money(d.ledger_total)} "
                           f"register {_money(d.register_total)} — {d.note}")
    if diffs:
        raise SystemExit(exitcodes.PROBLEMS)


def shift_documents(drv: Driver, shift_no: int, rows: list[ReceiptRecord]) -> list[FiscalDocument]:
    """The documents of shift *shift_no*, read back from the register between its opening and closing
    reports (bounded: at most RECONCILE_MAX_DOCUMENTS beyond the ledger's own FD numbers each way)."""
    last = drv.status().last_fd_number
    known = [r.fd_number for r in rows if r.fd_number]
    start = min(known) if known else last
    docs: dict[int, FiscalDocument] = {}
    fd = start
    while fd >= 1 and start - fd <= RECONCILE_MAX_DOCUMENTS:           # back to the opening report
        doc = drv.document(fd)
        if doc is None or doc.shift_number < shift_no:
            break
        docs[fd] = doc
        if doc.kind is DocumentKind.OPEN_SHIFT:
            break
        fd -= 1
    fd = start + 1
    while fd <= last and fd - max(known or [start]) <= RECONCILE_MAX_DOCUMENTS:  # on to the Z report
        doc = drv.document(fd)
        if doc is None or doc.shift_number > shift_no:
            break
        docs[fd] = doc
        if doc.kind is DocumentKind.CLOSE_SHIFT:
            break
        fd += 1
    return [d for d in docs.values() if d.shift_number == shift_no]
