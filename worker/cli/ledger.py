"""``status`` and ``ledger list|show|export|prune``: what the admin and the accountant read."""
from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import click

from worker import app
from worker.cli import exitcodes
from worker.cli.options import (
    Ctx, echo_csv, filter_args, opt, output_option, pass_ctx, print_counts, receipt_filters,
)
from worker.defaults import ERROR_PREVIEW_CHARS, INGEST_LEASE, LEDGER_LIST_LIMIT, STATUS_GAPS_SHOWN

#: the receipt fields ``ledger show`` prints when set
SHOW_FIELDS = ("register", "fn_serial", "fd_before", "fd_number", "fiscal_sign", "shift_number", "receipt_number",
               "fiscal_at", "qr", "attempts", "next_attempt_at", "error_class", "last_error")


def _first(items: list[str]) -> str:
    return ", ".join(items[:STATUS_GAPS_SHOWN]) + (" …" if len(items) > STATUS_GAPS_SHOWN else "")


@click.command()
@output_option
@opt("--json", "as_json", is_flag=True, help="the same as --output json")
@opt("--check", is_flag=True, help="for monitoring: exit 1 when anything needs a person (see the list)")
@pass_ctx
def status(c: Ctx, output: str, as_json: bool, check: bool) -> None:
    """Is the worker running, what needs a person, counts by state, cursor, gaps, lanes."""
    from worker.ops.health import evaluate, worker_running
    from worker.ops.runner import thresholds
    from worker.ledger.space import free_mb
    from worker.ops.snapshot import take_snapshot

    ledger = c.reader
    counts = ledger.counts()
    details = ledger.status_details()
    limits = thresholds(c.settings)
    snap = take_snapshot(ledger, heartbeat_stale_s=limits.heartbeat_stale_s)
    docs = ledger.document_counts()[0]
    details.update(leases=ledger.leases(), watermarks=docs["watermarks"], register_documents=docs["documents"],
                   ledger_free_mb=free_mb(c.settings.ledger_url), ingest_pauses_below_mb=c.settings.ledger.min_free_mb)
    problems = evaluate(snap, limits)
    running = worker_running(snap, limits)
    cluster = _cluster(c, details["leases"], limits.heartbeat_stale_s)
    if cluster is not None:
        details["cluster"] = cluster
    if as_json or output == "json":
        click.echo(json.dumps({"worker": "running" if running else "down", "counts": counts,
                               "problems": [{"key": p.key, "severity": p.severity, "message": p.message}
                                            for p in problems],
                               "free_bytes": snap.free_bytes, **details}, default=str, indent=2))
    elif output == "csv":
        from worker.reports.export import write_table

        echo_csv(lambda out: write_table(_status_rows(running, counts, problems, details), out, STATUS_COLUMNS))
    else:
        click.echo(f"worker: {'running' if running else 'DOWN'}")
        print_counts(ledger)
        for cur in details["cursors"]:
            click.echo(f"cursor {cur['source']}: last id {cur['last_id']} "
                       f"(at {cur['updated_at']:%Y-%m-%d %H:%M:%S} UTC)")
        gaps = details["open_gaps"]
        click.echo(f"open gaps: {len(gaps)}" + (f" ({_first([str(g['id']) for g in gaps])})" if gaps else ""))
        expired = details["expired_gaps"]
        click.echo(f"expired gaps: {len(expired)}" + (
            f" ({', '.join(str(g['id']) + ('' if g['reason'] == 'expired' else ' ' + g['reason']) for g in expired[:STATUS_GAPS_SHOWN])})"
            if expired else ""))
        for lane in details["lanes"]:
            state = lane["state"] if running else f"{lane['state']} (stale: the worker is not running)"
            click.echo(f"lane {lane['name']}: {state} (heartbeat {lane['heartbeat_at']:%Y-%m-%d %H:%M:%S} UTC) "
                       f"FN {lane['fn_serial']} last FD {lane['last_fd']}"
                       f"{' — ' + lane['reason'] if lane['reason'] else ''}")
        if snap.free_bytes is not None:
            click.echo(f"ledger disk: {snap.free_bytes // (1024 * 1024)} MiB free")
        _print_fencing(details)
        if cluster is not None:
            from worker.ops.cluster import cluster_lines

            for line in cluster_lines(cluster):
                click.echo(line)
        click.echo("needs a person: " + ("nothing" if not problems else f"{len(problems)}"))
        for p in problems:
            click.echo(f"  [{p.severity}] {p.message}")
    if check and problems:
        raise SystemExit(exitcodes.PROBLEMS)


def _cluster(c: Ctx, leases: list[dict[str, Any]], stale_s: float) -> dict[str, Any] | None:
    """The cluster view when this ledger has cluster workers (or cluster mode is on here); None otherwise."""
    from worker.ops.cluster import cluster_view

    try:
        now, workers = c.reader.cluster_view()
    except Exception:   # a ledger from before the workers table: no cluster to show
        return None
    if not workers and not c.settings.cluster.enabled:
        return None
    return cluster_view(now, workers, leases, stale_s)


@click.group()
def ledger() -> None:
    """Read the ledger: lists, one receipt's history, totals, CSV export."""


@ledger.command("list")
@receipt_filters
@opt("--limit", type=int, default=LEDGER_LIST_LIMIT, help="rows per page (0: all)")
@opt("--offset", type=int, default=0, help="skip this many rows (the next page)")
@output_option
@pass_ctx
def ledger_list(c: Ctx, states: tuple[str, ...], day_from: Any, day_to: Any, ids: tuple[int, ...],
                search: str | None, limit: int, offset: int, output: str) -> None:
    """Receipts with their fiscal requisites; totals over everything the filters match, not just this page."""
    from worker.reports.totals import summarize

    filters = filter_args(states, day_from, day_to, ids, search)
    rows = c.reader.list_receipts(**filters, limit=limit or None, offset=offset)
    total = c.reader.count_receipts(**filters)
    t = summarize(c.reader.list_receipts(**filters)) if total > len(rows) else summarize(rows)
    if output == "json":
        from worker.cli.reports import totals_json
        from worker.reports.export import row

        click.echo(json.dumps({"total": total, "offset": offset, "receipts": [row(r) for r in rows],
                               "totals": totals_json(t)}, ensure_ascii=False, indent=2, default=str))
        return
    if output == "csv":
        from worker.reports.export import write_csv

        echo_csv(lambda out: write_csv(rows, out, zone=app.receipt_config(c.settings).timezone))
        if offset + len(rows) < total:  # the table stays a table: the notice goes to stderr
            click.echo(f"rows {offset + 1}–{offset + len(rows)} of {total}; more with --offset "
                       f"{offset + len(rows)} (or --limit 0, or ledger export)", err=True)
        return
    click.echo(f"{'shop id':>8} {'tag':<10} {'stage':<10} {'state':<12} {'total':>12} {'FD':>6} "
               f"{'FP':>10} {'shift':>5}  error")
    for r in rows:
        click.echo(f"{r.source_id:>8} {r.tag:<10} {str(r.stage):<10} {r.state.value:<12} "
                   f"{'' if r.total is None else r.total:>12} {r.fd_number or '':>6} "
                   f"{r.fiscal_sign or '':>10} {r.shift_number or '':>5}  {(r.last_error or '')[:ERROR_PREVIEW_CHARS]}")
    shown = f"{offset + 1}–{offset + len(rows)}" if rows else "0"
    more = f"; more with --offset {offset + len(rows)}" if offset + len(rows) < total else ""
    click.echo(f"{len(rows)} receipts (rows {shown} of {total}{more})")
    click.echo(f"totals of all {total}: sales {t.sales:.2f}, refunds {t.refunds:.2f}, corrections {t.corrections:.2f},"
               f" net {t.net:.2f}; without a receipt {t.unreceipted_amount:.2f} in {len(t.unreceipted)}"
               + ("" if not t.unreceipted else " (" + ", ".join(
                   f"{k} {n}" for k, (n, _) in t.by_state.items() if k != "done") + ")"))


@ledger.command("show")
@click.argument("shop_id", type=int, required=False)
@opt("--id", "id_option", type=int, default=None, help="shop payment id (the same as the argument)")
@output_option
@pass_ctx
def ledger_show(c: Ctx, shop_id: int | None, id_option: int | None, output: str) -> None:
    """Everything about one shop payment: receipts and every register call (times in UTC)."""
    shop_id = shop_id if shop_id is not None else id_option
    if shop_id is None:
        raise click.UsageError("name the payment: ledger show ID (or --id ID)")
    rows = c.reader.list_receipts(source_ids=[shop_id])
    if not rows:
        raise click.ClickException(f"payment {shop_id} is not in the ledger")
    if output == "json":
        from worker.reports.export import row

        click.echo(json.dumps([{**row(r), "attempts_history": c.reader.attempts_of(r.id),
                                "marking_results": [_mark_json(m) for m in c.reader.marks_of(r.id)]} for r in rows],
                              ensure_ascii=False, indent=2, default=str))
        return
    if output == "csv":   # the payment's receipts with every requisite (the attempts: --output json)
        from worker.reports.export import write_csv

        echo_csv(lambda out: write_csv(rows, out, zone=app.receipt_config(c.settings).timezone))
        return
    for r in rows:
        click.echo(f"receipt {r.tag} ({r.stage} part {r.part}): {r.state.value}, total {r.total}")
        for key in SHOW_FIELDS:
            value = getattr(r, key)
            if value is not None:
                click.echo(f"  {key}: {value}")
        for m in c.reader.marks_of(r.id):
            click.echo(f"  marking code line {m['line']}: {_mark_text(m)}")
        for a in c.reader.attempts_of(r.id):
            click.echo(f"  attempt {a['id']} {a['action']} on {a['register']} at {a['started_at']:%Y-%m-%d %H:%M:%S} UTC"
                       f": {a['outcome'] or 'unfinished'}"
                       f"{' FD ' + str(a['fd_number']) if a['fd_number'] else ''}"
                       f"{' — ' + a['error'] if a['error'] else ''}")


@ledger.command("export")
@receipt_filters
@opt("--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv",
     help="csv: a Russian-locale spreadsheet (BOM, ';', decimal comma); xlsx: typed cells; json: exact strings")
@opt("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-",
     help="file to write ('-' for stdout; xlsx needs a file)")
@pass_ctx
def ledger_export(c: Ctx, states: tuple[str, ...], day_from: Any, day_to: Any, ids: tuple[int, ...],
                  search: str | None, fmt: str, output: str) -> None:
    """Every requisite, the payment time (UTC) and the fiscal time (shop's zone), the QR string."""
    from worker.reports import export

    rows = c.reader.list_receipts(**filter_args(states, day_from, day_to, ids, search))
    zone = app.receipt_config(c.settings).timezone
    if fmt == "xlsx":
        if output == "-":
            raise click.UsageError("--format xlsx needs -o FILE")
        export.write_xlsx(rows, output, zone=zone)
    elif fmt == "json":
        text = export.to_json(rows, zone=zone)
        if output == "-":
            click.echo(text)
        else:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text)
    else:
        out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8-sig", newline="")
        try:
            export.write_csv(rows, out, zone=zone)
        finally:
            if out is not sys.stdout:
                out.close()
    if output != "-":
        click.echo(f"wrote {len(rows)} receipts to {output}", err=True)


@ledger.command("prune")
@opt("--older-than-days", "days", type=int, required=True, help="payments ingested more than N days ago")
@opt("--yes", is_flag=True, allow_from_autoenv=False, show_envvar=False, help="do it without asking")
@pass_ctx
def ledger_prune(c: Ctx, days: int, yes: bool) -> None:
    """Erase customers' e-mails and phones of settled payments (152-FZ); fiscal requisites stay."""
    from worker.ledger.records import utcnow

    if days < 1:
        raise click.BadParameter("must be at least 1", param_hint="--older-than-days")
    if not yes:
        click.confirm(f"erase the contacts of settled payments ingested more than {days} days ago?", abort=True)
    n = c.ledger.anonymise_contacts(utcnow() - dt.timedelta(days=days))
    click.echo(f"anonymised {n} payments")


#: the columns of ``status --output csv``
STATUS_COLUMNS = (("section", "Раздел", "text"), ("key", "Показатель", "text"), ("value", "Значение", "text"))


def _status_rows(running: bool, counts: dict[str, int], problems: list[Any],
                 details: dict[str, Any]) -> list[dict[str, Any]]:
    """``status`` as rows of (section, key, value): worker, counts, cursors, gaps, lanes, problems."""
    rows: list[dict[str, Any]] = [{"section": "worker", "key": "state", "value": "running" if running else "down"}]
    rows += [{"section": "receipts", "key": k, "value": v} for k, v in sorted(counts.items())]
    rows += [{"section": "cursor", "key": cur["source"], "value": cur["last_id"]} for cur in details["cursors"]]
    rows.append({"section": "gaps", "key": "open", "value": len(details["open_gaps"])})
    rows.append({"section": "gaps", "key": "expired", "value": len(details["expired_gaps"])})
    rows += [{"section": "lane", "key": lane["name"], "value": f"{lane['state']} FN {lane['fn_serial']} "
              f"last FD {lane['last_fd']}" + (f" — {lane['reason']}" if lane["reason"] else "")}
             for lane in details["lanes"]]
    cluster = details.get("cluster")
    if cluster is not None:   # cluster mode: nodes, the ingest lease, each register's holder
        rows += [{"section": "node", "key": w["node"], "value": f"{w['status']} heartbeat {w['heartbeat_age_s']:.0f} s "
                  f"ago; registers {' '.join(w['registers'])}"} for w in cluster["workers"]]
        ing = cluster["ingest"]
        rows.append({"section": "ingest", "key": "holder", "value": f"{ing['holder']} epoch {ing['epoch']}"
                     if ing else "nobody yet"})
        rows += [{"section": "register", "key": r["register"], "value": f"{r['placement']}; " + (
                  f"{r['lease']['holder']} epoch {r['lease']['epoch']}" if r["lease"] else "no lease yet")}
                 for r in cluster["registers"]]
    rows += [{"section": "needs a person", "key": p.severity, "value": p.message} for p in problems]
    return rows


def _mark_json(m: dict[str, Any]) -> dict[str, Any]:
    """One receipt_marks row for ``ledger show --output json`` (2106 as a number and in words)."""
    from kkt_drivers.marking_flow import describe_2106

    return {"line": m["line"], "code": m["code"], "result_2106": m["result"], "meaning": describe_2106(m["result"]),
            "checked_at": m["checked_at"]}


def _mark_text(m: dict[str, Any]) -> str:
    """A code by GTIN/serial only (never its crypto tail) and its 2106."""
    import base64

    from kkt_drivers.marking import MarkingCodeError, parse
    from kkt_drivers.marking_flow import describe_2106

    try:
        name = parse(base64.b64decode(m["code"])).short
    except (MarkingCodeError, ValueError):
        name = "?"
    return f"{name} — {describe_2106(m['result'])}"


def _print_fencing(details: dict[str, Any]) -> None:
    """Leases, watermarks, examined documents, swept-in and drifted rows, whether ingest pauses for space."""
    for lease in details["leases"]:
        if lease["register"] == INGEST_LEASE:
            continue   # shown with the cluster
        click.echo(f"lease {lease['register']}: epoch {lease['epoch']} {lease['holder']} "
                   + (f"live until {lease['expires_at']:%H:%M:%S} UTC" if lease['live']
                      else f"expired at {lease['expires_at']:%H:%M:%S} UTC"))
    for mark in details["watermarks"]:
        docs = {d["disposition"]: d["n"] for d in details["register_documents"] if d["register"] == mark["register"]}
        click.echo(f"register {mark['register']} FN {mark['fn_serial']}: accounted up to FD {mark['last_fd']}"
                   + (f"; examined: {', '.join(f'{k} {v}' for k, v in sorted(docs.items()))}" if docs else ""))
    if details["swept_in"]:
        click.echo(f"swept in late: {', '.join(str(g['id']) for g in details['swept_in'][:STATUS_GAPS_SHOWN])}")
    for d in details["drifted"][:STATUS_GAPS_SHOWN]:
        click.echo(f"shop row {d['source_id']} changed after ingest (receipt stays as printed): {d['drift']}")
    free, floor = details["ledger_free_mb"], details["ingest_pauses_below_mb"]
    if free is not None:
        click.echo(f"ingest: {'PAUSED' if free < floor else 'not paused'} (ledger disk {free:.0f} MB free, "
                   f"pauses below {floor} MB)")
