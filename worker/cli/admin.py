"""The accountant's and the admin's commands: ledger, backfill, resend, reconcile, shifts, reports."""
from __future__ import annotations

import csv
import datetime as dt
import sys
from decimal import Decimal
from typing import Any, Callable

import click

from worker.ledger.states import RESENDABLE, State
from worker.ledger.store import ReceiptRecord

CSV_COLUMNS = (
    ("shop_id", "ID платежа"), ("kind", "Вид"), ("stage", "Этап"), ("part", "Часть"), ("tag", "Метка 1192"),
    ("state", "Состояние"), ("total", "Сумма"), ("register", "ККТ"), ("fn_serial", "ФН"),
    ("fd_number", "ФД"), ("fiscal_sign", "ФП"), ("shift_number", "Смена"), ("receipt_number", "Чек в смене"),
    ("fiscal_at", "Дата чека"), ("qr", "QR"), ("attempts", "Попыток"), ("last_error", "Ошибка"),
)


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


def register_admin_commands(cli: click.Group, pass_ctx: Any, opt: Callable[..., Any]) -> None:
    """Attach the admin command groups to *cli*."""

    def filters(f: Callable[..., Any]) -> Callable[..., Any]:
        f = opt("--state", "states", multiple=True, type=click.Choice([s.value for s in State]),
                help="only these states (repeatable)")(f)
        f = opt("--from", "since", default=None, help="created on or after (YYYY-MM-DD[THH:MM], UTC)")(f)
        f = opt("--to", "until", default=None, help="created before (YYYY-MM-DD[THH:MM], UTC)")(f)
        f = opt("--id", "ids", multiple=True, type=int, help="shop payment id (repeatable)")(f)
        return f

    @cli.group()
    def ledger() -> None:
        """Read the ledger: lists, one receipt's history, totals, CSV export."""

    @ledger.command("list")
    @filters
    @opt("--limit", type=int, default=200, help="at most this many rows (0: all)")
    @pass_ctx
    def ledger_list(c: Any, states: tuple[str, ...], since: str | None, until: str | None,
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
                       f"{r.fiscal_sign or '':>10} {r.shift_number or '':>5}  {(r.last_error or '')[:80]}")
        click.echo(f"{len(rows)} receipts; totals: " +
                   ", ".join(f"{k} {v:.2f}" for k, v in sorted(totals.items())))

    @ledger.command("show")
    @click.argument("shop_id", type=int)
    @pass_ctx
    def ledger_show(c: Any, shop_id: int) -> None:
        """Everything about one shop payment: receipts and every register call."""
        rows = c.ledger.list_receipts(source_ids=[shop_id])
        if not rows:
            raise click.ClickException(f"payment {shop_id} is not in the ledger")
        for r in rows:
            click.echo(f"receipt {r.tag} ({r.stage} part {r.part}): {r.state.value}, total {r.total}")
            for key in ("register", "fn_serial", "fd_before", "fd_number", "fiscal_sign", "shift_number",
                        "receipt_number", "fiscal_at", "qr", "attempts", "next_attempt_at", "error_class",
                        "last_error"):
                value = getattr(r, key)
                if value is not None:
                    click.echo(f"  {key}: {value}")
            for a in c.ledger.attempts_of(r.id):
                click.echo(f"  attempt {a['id']} {a['action']} on {a['register']} at {a['started_at']:%Y-%m-%d %H:%M:%S}"
                           f": {a['outcome'] or 'unfinished'}"
                           f"{' FD ' + str(a['fd_number']) if a['fd_number'] else ''}"
                           f"{' — ' + a['error'] if a['error'] else ''}")

    @ledger.command("export")
    @filters
    @opt("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-",
         help="CSV file to write ('-' for stdout)")
    @pass_ctx
    def ledger_export(c: Any, states: tuple[str, ...], since: str | None, until: str | None,
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

    @cli.command()
    @opt("--from-id", type=int, required=True, help="first shop payment id")
    @opt("--to-id", type=int, required=True, help="last shop payment id (inclusive)")
    @pass_ctx
    def backfill(c: Any, from_id: int, to_id: int) -> None:
        """Ingest a range of shop ids the cursor passed (never re-fiscalizes a payment already in the ledger)."""
        from worker.ingest.planner import Planner
        from worker.ingest.poller import Ingestor
        from worker.wiring import open_shop_source, receipt_config

        if to_id < from_id:
            raise click.BadParameter("--to-id must be >= --from-id")
        src = open_shop_source(c.settings)
        ing = Ingestor(src, c.ledger, Planner(c.ledger, receipt_config(c.settings)))
        with click.progressbar(length=to_id - from_id + 1, label="backfill", file=sys.stderr) as bar:
            added = ing.backfill(from_id, to_id, progress=bar.update)
        src.close()
        click.echo(f"added {added} payments in {from_id}..{to_id}; the worker fiscalizes them")

    @cli.command()
    @opt("--id", "ids", multiple=True, type=int, help="shop payment id (repeatable)")
    @opt("--state", "states", multiple=True, type=click.Choice([s.value for s in RESENDABLE]),
         help="every receipt in this state (repeatable)")
    @opt("--reviewed", is_flag=True,
         help="also requeue needs_review receipts: only after you checked on the register that no document exists")
    @opt("--no-refetch", is_flag=True, help="rebuild from the stored snapshot instead of re-reading the shop row")
    @pass_ctx
    def resend(c: Any, ids: tuple[int, ...], states: tuple[str, ...], reviewed: bool, no_refetch: bool) -> None:
        """Requeue rejected/failed payments, re-reading the (fixed) shop row and rebuilding the receipt."""
        from worker.ingest.planner import Planner
        from worker.wiring import current_shop_rows, receipt_config

        allowed = {s.value for s in RESENDABLE} | ({State.NEEDS_REVIEW.value} if reviewed else set())
        if not ids and not states:
            raise click.UsageError("name payments with --id or a --state")
        rows = c.ledger.list_receipts(states=states or sorted(allowed), source_ids=ids)
        targets = sorted({r.source_id for r in rows if r.state.value in allowed})
        skipped = sorted({r.source_id for r in rows if r.state.value not in allowed} - set(targets))
        # a payment that an admin already settled with a correction receipt must not be printed again
        corrected = {sid for sid in targets if any(
            r.stage == "correction" and r.state.value != "rejected" for r in c.ledger.list_receipts(source_ids=[sid]))}
        for sid in sorted(corrected):
            click.echo(f"payment {sid}: not resent — it has a correction receipt (see ledger show {sid})")
        targets = [sid for sid in targets if sid not in corrected]
        planner = Planner(c.ledger, receipt_config(c.settings))
        rows = current_shop_rows(c.settings, c.ledger, targets, refetch=not no_refetch)
        queued = 0
        for sid in targets:
            n = c.ledger.replan(sid, rows[sid], planner.plan(rows[sid]))
            queued += n
            click.echo(f"payment {sid}: {'requeued' if n else 'still rejected: see ledger show ' + str(sid)}")
        for sid in skipped:
            click.echo(f"payment {sid}: not resent (its state is not one of {', '.join(sorted(allowed))})")
        click.echo(f"{queued} receipts queued")

    @cli.command()
    @opt("--register", "register", default=None, help="only this register")
    @pass_ctx
    def reconcile(c: Any, register: str | None) -> None:
        """Resolve receipts left "sending" against the registers' documents (run with the worker stopped)."""
        from kkt_drivers import open_driver
        from worker.fiscal.recovery import Reconciler, RegisterUnreachable
        from worker.ledger.runlock import RunLock

        with RunLock(c.ledger):
            for r in c.settings.enabled_registers():
                if register and r.name != register:
                    continue
                with open_driver(r.url) as drv:
                    rec = Reconciler(r.name, drv, c.ledger, c.settings.retry)
                    for row in c.ledger.sending(r.name):
                        try:
                            click.echo(f"{row.tag}: {rec.reconcile(row).value}")
                        except RegisterUnreachable as exc:
                            click.echo(f"{row.tag}: register unreachable, still sending ({exc})")

    def _driver(c: Any, register: str | None) -> Any:
        from kkt_drivers import open_driver

        regs = c.settings.enabled_registers()
        chosen = [r for r in regs if register in (None, r.name)]
        if not chosen:
            raise click.BadParameter(f"no register named {register!r}")
        if len(chosen) > 1:
            raise click.UsageError("several registers are configured: name one with --register")
        return open_driver(chosen[0].url)

    @cli.group()
    def shift() -> None:
        """Open or close a register's shift, or show it."""

    @shift.command("status")
    @opt("--register", default=None, help="register name from settings")
    @pass_ctx
    def shift_status(c: Any, register: str | None) -> None:
        """Shift number, when it opened, whether it is over 24 h."""
        with _driver(c, register) as drv:
            st = drv.status()
        click.echo(f"shift #{st.shift_number} {'open' if st.shift_open else 'closed'}"
                   f"{' since ' + str(st.shift_opened_at) if st.shift_open else ''}"
                   f"{' — OVER 24 HOURS' if st.shift_expired else ''}; last FD {st.last_fd_number}")

    @shift.command("open")
    @opt("--register", default=None, help="register name from settings")
    @pass_ctx
    def shift_open(c: Any, register: str | None) -> None:
        """Open a shift."""
        with _driver(c, register) as drv:
            doc = drv.open_shift(c.settings.shifts.cashier)
        click.echo(f"shift #{doc.shift_number} opened (FD {doc.fd_number})")

    @shift.command("close")
    @opt("--register", default=None, help="register name from settings")
    @pass_ctx
    def shift_close(c: Any, register: str | None) -> None:
        """Close the shift (Z report)."""
        with _driver(c, register) as drv:
            doc = drv.close_shift(c.settings.shifts.cashier)
        click.echo(f"shift #{doc.shift_number} closed, Z report FD {doc.fd_number}")

    @cli.group()
    def report() -> None:
        """Register reports."""

    @report.command("x")
    @opt("--register", default=None, help="register name from settings")
    @pass_ctx
    def report_x(c: Any, register: str | None) -> None:
        """Print an X report (no fiscal document)."""
        with _driver(c, register) as drv:
            drv.x_report()
        click.echo("X report printed")


def register_demo_commands(cli: click.Group, opt: Callable[..., Any]) -> None:
    """``demo init`` / ``demo feed``: the demo shop in an SQLite file (for a newcomer without MySQL)."""

    @cli.group()
    def demo() -> None:
        """The demo shop: an SQLite file with the reference schema and realistic payments."""

    @demo.command("init")
    @click.argument("path", type=click.Path(dir_okay=False))
    @opt("--sales", type=int, default=12, help="how many sales to create (a refund is added too)")
    @opt("--overwrite", is_flag=True, help="replace an existing file")
    def demo_init(path: str, sales: int, overwrite: bool) -> None:
        """Create the demo shop file."""
        from pathlib import Path

        from worker.demo import create_demo_shop

        create_demo_shop(Path(path), sales, overwrite=overwrite)
        click.echo(f"demo shop with {sales} sales and a refund written to {path}")

    @demo.command("feed")
    @click.argument("path", type=click.Path(dir_okay=False, exists=True))
    @opt("--every", type=float, default=3.0, help="seconds between new payments")
    @opt("--count", type=int, default=0, help="stop after this many (0: until stopped)")
    def demo_feed(path: str, every: float, count: int) -> None:
        """Add a new demo sale every few seconds, like a shop taking orders."""
        import time
        from pathlib import Path

        from worker.demo import add_demo_payment

        n = 0
        while count == 0 or n < count:
            time.sleep(every)
            add_demo_payment(Path(path))
            n += 1
