"""``status`` and ``ledger list|show|export``: what the admin and the accountant read."""
from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

import click

from worker.cli.options import Ctx, opt, pass_ctx, print_counts, receipt_filters
from worker.defaults import ERROR_PREVIEW_CHARS, LEDGER_LIST_LIMIT, STATUS_GAPS_SHOWN
from worker.ledger.store import ReceiptRecord

CSV_COLUMNS = (
    ("shop_id", "ID платежа"), ("kind", "Вид"), ("stage", "Этап"), ("part", "Часть"), ("tag", "Метка 1192"),
    ("state", "Состояние"), ("total", "Сумма"), ("register", "ККТ"), ("fn_serial", "ФН"),
    ("fd_number", "ФД"), ("fiscal_sign", "ФП"), ("shift_number", "Смена"), ("receipt_number", "Чек в смене"),
    ("fiscal_at", "Дата чека"), ("qr", "QR"), ("attempts", "Попыток"), ("last_error", "Ошибка"),
)

#: the receipt fields ``ledger show`` prints when set
SHOW_FIELDS = ("register", "fn_serial", "fd_before", "fd_number", "fiscal_sign", "shift_number", "receipt_number",
               "fiscal_at", "qr", "attempts", "next_attempt_at", "error_class", "last_error")


def _date(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _ru_money(value: Decimal | None) -> str:
    # a Russian-locale spreadsheet reads "1234,50" as a number; "1234.50" would be text or a date
    return "" if value is None else f"{value:.2f}".replace(".", ",")


def _ru_time(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%d.%m.%Y %H:%M:%S")


def _row(r: ReceiptRecord) -> dict[str, Any]:
    return {
        "shop_id": r.source_id, "kind": r.kind, "stage": r.stage, "part": r.part, "tag": r.tag,
        "state": r.state.value, "total": r.total, "register": r.register, "fn_serial": r.fn_serial,
        "fd_number": r.fd_number, "fiscal_sign": r.fiscal_sign, "shift_number": r.shift_number,
        "receipt_number": r.receipt_number, "fiscal_at": r.fiscal_at, "qr": r.qr, "attempts": r.attempts,
        "last_error": r.last_error,
    }


def _first(items: list[str]) -> str:
    return ", ".join(items[:STATUS_GAPS_SHOWN]) + (" …" if len(items) > STATUS_GAPS_SHOWN else "")


@click.command()
@opt("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """Counts by state, the cursor, open and expired gaps, lanes."""
    counts = c.ledger.counts()
    details = c.ledger.status_details()
    if as_json:
        click.echo(json.dumps({"counts": counts, **details}, default=str, indent=2))
        return
    print_counts(c.ledger)
    for cur in details["cursors"]:
        click.echo(f"cursor {cur['source']}: last id {cur['last_id']} (at {cur['updated_at']:%Y-%m-%d %H:%M:%S} UTC)")
    gaps = details["open_gaps"]
    click.echo(f"open gaps: {len(gaps)}" + (f" ({_first([str(g['id']) for g in gaps])})" if gaps else ""))
    expired = details["expired_gaps"]
    click.echo(f"expired gaps: {len(expired)}" + (
        f" ({', '.join(str(g['id']) + ('' if g['reason'] == 'expired' else ' ' + g['reason']) for g in expired[:STATUS_GAPS_SHOWN])})"
        if expired else ""))
    for lane in details["lanes"]:
        click.echo(f"lane {lane['name']}: {lane['state']} (heartbeat {lane['heartbeat_at']:%H:%M:%S} UTC) "
                   f"FN {lane['fn_serial']} last FD {lane['last_fd']}"
                   f"{' — ' + lane['reason'] if lane['reason'] else ''}")


@click.group()
def ledger() -> None:
    """Read the ledger: lists, one receipt's history, totals, CSV export."""


@ledger.command("list")
@receipt_filters
@opt("--limit", type=int, default=LEDGER_LIST_LIMIT, help="at most this many rows (0: all)")
@pass_ctx
def ledger_list(c: Ctx, states: tuple[str, ...], since: str | None, until: str | None,
                ids: tuple[int, ...], limit: int) -> None:
    """List receipts with their fiscal requisites, and the total per state."""
    rows = c.ledger.list_receipts(states=states, since=_date(since), until=_date(until), source_ids=ids,
                                  limit=limit or None)
    click.echo(f"{'shop id':>8} {'tag':<10} {'stage':<8} {'state':<12} {'total':>12} {'FD':>6} "
               f"{'FP':>10} {'shift':>5}  error")
    totals: dict[str, Decimal] = {}
    for r in rows:
        totals[r.state.value] = totals.get(r.state.value, Decimal(0)) + (r.total or Decimal(0))
        click.echo(f"{r.source_id:>8} {r.tag:<10} {r.stage:<8} {r.state.value:<12} "
                   f"{'' if r.total is None else r.total:>12} {r.fd_number or '':>6} "
                   f"{r.fiscal_sign or '':>10} {r.shift_number or '':>5}  {(r.last_error or '')[:ERROR_PREVIEW_CHARS]}")
    click.echo(f"{len(rows)} receipts; totals: " +
               ", ".join(f"{k} {v:.2f}" for k, v in sorted(totals.items())))


@ledger.command("show")
@click.argument("shop_id", type=int)
@pass_ctx
def ledger_show(c: Ctx, shop_id: int) -> None:
    """Everything about one shop payment: receipts and every register call."""
    rows = c.ledger.list_receipts(source_ids=[shop_id])
    if not rows:
        raise click.ClickException(f"payment {shop_id} is not in the ledger")
    for r in rows:
        click.echo(f"receipt {r.tag} ({r.stage} part {r.part}): {r.state.value}, total {r.total}")
        for key in SHOW_FIELDS:
            value = getattr(r, key)
            if value is not None:
                click.echo(f"  {key}: {value}")
        for a in c.ledger.attempts_of(r.id):
            click.echo(f"  attempt {a['id']} {a['action']} on {a['register']} at {a['started_at']:%Y-%m-%d %H:%M:%S}"
                       f": {a['outcome'] or 'unfinished'}"
                       f"{' FD ' + str(a['fd_number']) if a['fd_number'] else ''}"
                       f"{' — ' + a['error'] if a['error'] else ''}")


@ledger.command("export")
@receipt_filters
@opt("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-",
     help="CSV file to write ('-' for stdout)")
@pass_ctx
def ledger_export(c: Ctx, states: tuple[str, ...], since: str | None, until: str | None,
                  ids: tuple[int, ...], output: str) -> None:
    """CSV for a Russian-locale spreadsheet: UTF-8 with BOM, ';' separator, decimal comma."""
    rows = c.ledger.list_receipts(states=states, since=_date(since), until=_date(until), source_ids=ids)
    out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8-sig", newline="")
    try:
        w = csv.writer(out, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        w.writerow([title for _, title in CSV_COLUMNS])
        for r in rows:
            d = _row(r)
            d["total"] = _ru_money(d["total"])
            d["fiscal_at"] = _ru_time(d["fiscal_at"])
            w.writerow(["" if d[k] is None else d[k] for k, _ in CSV_COLUMNS])
    finally:
        if out is not sys.stdout:
            out.close()
    if output != "-":
        click.echo(f"wrote {len(rows)} receipts to {output}", err=True)
