"""``report daily|shift|range``: the accountant's totals, reconciled with the registers.

Days are the shop's local days (``receipts.timezone``). Every report shows sales, refunds,
corrections and net; sums per VAT rate and payment type; per register and shift; counts by state;
and every amount that has **no receipt** (rejected, failed, needing review, still queued) with its
reason. ``report shift --reconcile`` reads the shift's documents back from the register and lists
every difference with the ledger, payment by payment, then compares the ledger's sums with the
register's OWN counters (Z report, FN shift totals, cash registers: ``Driver.shift_totals``); a
register that cannot report them is listed as "counters not available", never passed silently.
``report daily --counters`` does the counter check for every register shift of the day.

``--output text|json|csv`` on every report; csv is one flat table (section, key, count, amount,
register's amount, note) for a Russian-locale spreadsheet.
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
from worker.cli.options import Ctx, echo_csv, opt, output_option, pass_ctx, register_option
from worker.defaults import RECONCILE_MAX_DOCUMENTS
from worker.ledger.records import ReceiptRecord
from worker.reports import export
from worker.reports.counters import CounterCheck, compare_counters, not_available
from worker.reports.reconcile import Difference, reconcile_shift
from worker.reports.totals import Totals, summarize

OUTPUT = output_option
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


def _m(v: Decimal | None) -> str | None:
    return None if v is None else f"{v:.2f}"


def difference_json(d: Difference) -> dict[str, Any]:
    """One difference as JSON-safe data."""
    return {"kind": d.kind, "fd_number": d.fd_number, "tag": d.tag, "ledger_total": _m(d.ledger_total),
            "register_total": _m(d.register_total), "note": d.note, "receipts": list(d.receipts)}


def counters_json(check: CounterCheck) -> dict[str, Any]:
    """A counter check as JSON-safe data."""
    return {"register": check.register, "shift": check.shift, "status": check.status, "reason": check.reason,
            "register_counters": check.register_totals.to_json() if check.register_totals else None,
            "ledger_sums": check.ledger_totals.to_json() if check.ledger_totals else None,
            "differences": [difference_json(d) for d in check.differences]}


def print_counters(check: CounterCheck) -> None:
    """The register's counters beside the ledger's sums, then every difference."""
    if check.status != "checked":
        click.echo(f"  register {check.register} shift {check.shift}: counters NOT AVAILABLE — {check.reason}")
        return
    rt, lt = check.register_totals, check.ledger_totals
    assert rt is not None and lt is not None
    click.echo(f"  register {check.register} shift {check.shift}: counters from {rt.source}"
               f"{' (final)' if rt.final else ' (open shift)'}: "
               + ("no differences" if not check.differences else f"{len(check.differences)} difference(s)"))
    for name, op in rt.operations.items():
        mine = lt.operations.get(name)
        if not op.count and not op.amount and not (mine and mine.count):
            continue
        pay = ", ".join(f"{k} {_money(v)}" for k, v in op.by_payment.items())
        click.echo(f"    {name}: register {op.count if op.count is not None else '?'} receipts {_money(op.amount)}"
                   f"{' (' + pay + ')' if pay else ''}; ledger {mine.count if mine else 0} receipts "
                   f"{_money(mine.amount if mine else Decimal('0'))}")
    for d in check.differences:
        click.echo(f"    {d.kind}: {d.note}")
        for r in d.receipts:
            click.echo(f"      behind it: {r}")


def read_counters(drv: Driver, register: str, shift_no: int, rows: list[ReceiptRecord],
                  documents: list[FiscalDocument] | None = None,
                  differences: list[Difference] | None = None) -> CounterCheck:
    """Ask the register for its own counters of the shift and compare them with the ledger."""
    from kkt_drivers.errors import KktError

    if not drv.reads_counters:
        return not_available(register, shift_no, f"the {drv.model} driver cannot read the register's counters")
    try:
        totals = drv.shift_totals(shift_no)
    except KktError as exc:
        return not_available(register, shift_no, f"reading the counters failed: {exc}")
    if totals is None:
        return not_available(register, shift_no, f"the {drv.model} register no longer holds shift {shift_no}'s "
                                                  "counters (only the open shift's, or its Z report)")
    return compare_counters(register, rows, totals, documents or [], differences or [])


def _period(c: Ctx, first: dt.date, last: dt.date, output: str, counters: bool = False) -> None:
    rows = c.reader.list_receipts(day_from=first, day_to=last, limit=MAX_REPORT_ROWS)
    t = summarize(rows)
    zone = _zone(c)
    checks = _check_shifts(c, t, rows) if counters else None
    if output == "json":
        click.echo(json.dumps({"from": first.isoformat(), "to": last.isoformat(), "zone": zone, **totals_json(t),
                               "counters": None if checks is None else [counters_json(k) for k in checks]},
                              ensure_ascii=False, indent=2))
    elif output == "csv":
        echo_csv(lambda out: export.write_table(
            export.totals_rows(t) + [r for k in checks or [] for r in export.counter_rows(k)], out))
    else:
        print_totals(f"{first}…{last} ({zone})", t)
        if checks is not None:
            click.echo("  the registers' own counters:" + ("" if checks else " no register shift in the period"))
            for k in checks:
                print_counters(k)
    if checks and any(k.differences for k in checks):
        raise SystemExit(exitcodes.PROBLEMS)


def _check_shifts(c: Ctx, t: Totals, rows: list[ReceiptRecord]) -> list[CounterCheck]:
    """The counter check of every register shift in *t* (each register opened under its lease).

    The whole shift is compared, not just the period's part of it: a register counts shifts, not days.
    """
    from worker.cli.shift import _driver

    configured = {r.name for r in c.settings.registers}
    checks: list[CounterCheck] = []
    for (register, shift_no) in sorted(t.by_shift, key=lambda k: (k[0], k[1] or 0)):
        if shift_no is None:
            continue
        if register not in configured:
            checks.append(not_available(register, shift_no, "the register is not in the settings any more"))
            continue
        shift_rows = _shift_rows(c, register, shift_no)
        with _driver(c, register) as drv:
            checks.append(read_counters(drv, register, shift_no, shift_rows))
    return checks


def _shift_rows(c: Ctx, register: str, shift_no: int) -> list[ReceiptRecord]:
    return [r for r in c.reader.list_receipts(limit=MAX_REPORT_ROWS)
            if r.register == register and r.shift_number == shift_no]


@click.command("daily")
@opt("--day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="the shop's local day (default: today)")
@opt("--counters", is_flag=True, help="also compare every register shift of the day with the register's own "
                                      "counters (talks to the registers; exit 1 on a difference)")
@OUTPUT
@pass_ctx
def daily(c: Ctx, day: dt.datetime | None, counters: bool, output: str) -> None:
    """Totals of one day in the shop's time zone."""
    d = day.date() if day else _today(c)
    _period(c, d, d, output, counters)


@click.command("range")
@opt("--from", "first", type=click.DateTime(["%Y-%m-%d"]), required=True, help="first local day")
@opt("--to", "last", type=click.DateTime(["%Y-%m-%d"]), required=True, help="last local day (inclusive)")
@opt("--counters", is_flag=True, help="also compare every register shift in the range with the register's own "
                                      "counters (a register keeps the open shift's and its last Z report's: older "
                                      "shifts are listed as not available; exit 1 on a difference)")
@OUTPUT
@pass_ctx
def period(c: Ctx, first: dt.datetime, last: dt.datetime, counters: bool, output: str) -> None:
    """Totals of a range of local days."""
    if last < first:
        raise click.BadParameter("--to must not be before --from")
    _period(c, first.date(), last.date(), output, counters)


@click.command("shift")
@register_option
@opt("--shift", "shift_no", type=int, required=True, help="shift number on that register")
@opt("--reconcile/--no-reconcile", default=True,
     help="read the shift's documents and the register's own counters back from the register")
@opt("--require-counters", is_flag=True, help="exit 1 when the register's counters are not available")
@OUTPUT
@pass_ctx
def shift_report(c: Ctx, register: str | None, shift_no: int, reconcile: bool, require_counters: bool,
                 output: str) -> None:
    """One register's shift: totals, every difference with the register's own documents and with its
    own counters (exit 1 if any)."""
    from worker.cli.shift import _driver

    chosen = app.registers_named(c.settings, register)
    if len(chosen) != 1:
        raise click.UsageError("name one register with --register")
    name = chosen[0].name
    rows = _shift_rows(c, name, shift_no)
    t = summarize(rows)
    diffs: list[Difference] | None = None
    check: CounterCheck | None = None
    if reconcile:
        with _driver(c, name) as drv:
            docs = shift_documents(drv, shift_no, rows) if drv.reads_documents else []
            diffs = reconcile_shift(rows, docs) if drv.reads_documents else []
            check = read_counters(drv, name, shift_no, rows, docs, diffs)
    if output == "json":
        click.echo(json.dumps({"register": name, "shift": shift_no, **totals_json(t),
                               "differences": None if diffs is None else [difference_json(d) for d in diffs],
                               "counters": None if check is None else counters_json(check)},
                              ensure_ascii=False, indent=2, default=str))
    elif output == "csv":
        echo_csv(lambda out: export.write_table(
            export.totals_rows(t) + export.difference_rows(diffs or [])
            + (export.counter_rows(check) if check else []), out))
    else:
        print_totals(f"register {name}, shift {shift_no}", t)
        if diffs is not None:
            click.echo("  reconciled with the register's documents: "
                       + ("no differences" if not diffs else f"{len(diffs)} difference(s)"))
            for d in diffs:
                click.echo(f"    {d.kind}: FD {d.fd_number} tag {d.tag} ledger {_money(d.ledger_total)} "
                           f"register {_money(d.register_total)} — {d.note}")
        if check is not None:
            click.echo("  reconciled with the register's own counters:")
            print_counters(check)
    if diffs or (check is not None and check.differences):
        raise SystemExit(exitcodes.PROBLEMS)
    if require_counters and check is not None and check.status != "checked":
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
