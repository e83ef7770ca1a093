"""Pages of the accountant's web view. Each handler takes the query and returns a Response."""
from __future__ import annotations

import datetime as dt
import html
import io
import os
import tempfile
from decimal import Decimal
from typing import Any, Iterable
from urllib.parse import urlencode

import segno

from worker.ledger.states import State
from worker.ledger.store import Ledger, ReceiptRecord
from worker.ops.health import Thresholds, evaluate
from worker.ops.http import OpsServer, Response
from worker.ops.snapshot import take_snapshot
from worker.reports import export
from worker.reports.totals import summarize

PAGE_SIZE = 50
#: the most rows one export or totals page reads (larger ranges: the CLI)
MAX_ROWS = 100_000
HTML = "text/html; charset=utf-8"
e = html.escape

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2rem;color:#222}
nav a{margin-right:1rem} table{border-collapse:collapse;margin:.6rem 0}
td,th{border:1px solid #ccc;padding:.25rem .5rem;font-size:.9rem} th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums} .state-done{color:#176317}
.state-rejected,.state-failed,.state-needs_review{color:#a01010;font-weight:600} form input,form select{margin-right:.5rem}
.problem{color:#a01010} .muted{color:#777}
"""


def _q(query: dict[str, list[str]], key: str) -> str:
    return (query.get(key) or [""])[0].strip()


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _money(v: Decimal | None) -> str:
    return "" if v is None else f"{v:,.2f}".replace(",", "\u202f")


def _page(title: str, body: str) -> Response:
    doc = (f"<!doctype html><html lang='ru'><head><meta charset='utf-8'><title>{e(title)} — kkt-worker</title>"
           f"<style>{STYLE}</style></head><body><nav><a href='/'>Чеки</a><a href='/totals'>Итоги</a>"
           f"<a href='/lanes'>Кассы</a></nav><h1>{e(title)}</h1>{body}</body></html>")
    return 200, HTML, doc.encode()


class Pages:
    """The handlers, bound to one ledger and the shop's zone name."""

    def __init__(self, ledger: Ledger, zone: str, thresholds: Thresholds = Thresholds()) -> None:
        self.ledger = ledger
        self.zone = zone
        self.thresholds = thresholds

    # -- filters shared by the list and the exports ----------------------------------------------
    def _filters(self, query: dict[str, list[str]]) -> dict[str, Any]:
        state = _q(query, "state")
        return {"states": [state] if state in {s.value for s in State} else [],
                "search": _q(query, "q") or None,
                "day_from": _date(_q(query, "from")), "day_to": _date(_q(query, "to"))}

    def ledger_page(self, query: dict[str, list[str]]) -> Response:
        f = self._filters(query)
        try:
            page = max(int(_q(query, "page") or 1), 1)
        except ValueError:
            page = 1
        total = self.ledger.count_receipts(**f)
        rows = self.ledger.list_receipts(**f, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        options = "".join(f"<option value='{s.value}'{' selected' if [s.value] == f['states'] else ''}>{s.value}"
                          f"</option>" for s in State)
        form = (f"<form method='get' action='/' id='filters'>"
                f"<input name='q' placeholder='ID платежа, ФД или метка' value='{e(_q(query, 'q'))}'>"
                f"<select name='state'><option value=''>все состояния</option>{options}</select>"
                f"с <input type='date' name='from' value='{e(_q(query, 'from'))}'>"
                f"по <input type='date' name='to' value='{e(_q(query, 'to'))}'>"
                f"<button type='submit'>Показать</button></form>")
        keep = {k: v for k, v in (("q", _q(query, "q")), ("state", _q(query, "state")),
                                  ("from", _q(query, "from")), ("to", _q(query, "to"))) if v}
        first = (page - 1) * PAGE_SIZE + 1 if rows else 0
        shown = (f"<p id='shown'>Показаны {first}–{first + len(rows) - 1 if rows else 0} из {total}"
                 f"{' · ' + self._pager(keep, page, total) if total > PAGE_SIZE else ''}"
                 f" · <a id='csv' href='/export.csv?{urlencode(keep)}'>CSV</a>"
                 f" · <a id='xlsx' href='/export.xlsx?{urlencode(keep)}'>XLSX</a></p>")
        return _page("Чеки", form + shown + self._table(rows))

    @staticmethod
    def _pager(keep: dict[str, str], page: int, total: int) -> str:
        pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
        links = []
        if page > 1:
            links.append(f"<a href='/?{urlencode({**keep, 'page': page - 1})}'>← назад</a>")
        if page < pages:
            links.append(f"<a id='next' href='/?{urlencode({**keep, 'page': page + 1})}'>дальше →</a>")
        return f"стр. {page} из {pages} " + " ".join(links)

    def _table(self, rows: Iterable[ReceiptRecord]) -> str:
        head = ("<table id='receipts'><tr><th>ID платежа</th><th>Метка</th><th>Этап</th><th>Состояние</th>"
                f"<th>Сумма</th><th>ККТ</th><th>ФД</th><th>ФП</th><th>Смена</th><th>Дата чека ({e(self.zone)})</th>"
                "<th>Ошибка</th></tr>")
        body = "".join(
            f"<tr><td class='n'><a href='/payment?id={r.source_id}'>{r.source_id}</a></td><td>{e(r.tag)}</td>"
            f"<td>{e(r.stage)}</td><td class='state-{r.state.value}'>{r.state.value}</td>"
            f"<td class='n'>{_money(r.total)}</td><td>{e(r.register or '')}</td><td class='n'>{r.fd_number or ''}</td>"
            f"<td class='n'>{r.fiscal_sign or ''}</td><td class='n'>{r.shift_number or ''}</td>"
            f"<td>{r.fiscal_at or ''}</td><td>{e((r.last_error or '')[:120])}</td></tr>" for r in rows)
        return head + body + "</table>"

    # -- one payment -------------------------------------------------------------------------------
    def payment_page(self, query: dict[str, list[str]]) -> Response:
        try:
            source_id = int(_q(query, "id"))
        except ValueError:
            return 400, HTML, b"<p>id must be a number</p>"
        rows = self.ledger.list_receipts(source_ids=[source_id])
        if not rows:
            return 404, HTML, f"<p>Платежа {source_id} нет в журнале</p>".encode()
        parts = [self._table(rows)]
        for r in rows:
            parts.append(f"<h2>Чек {e(r.tag)} ({e(r.stage)}, часть {r.part}): {r.state.value}</h2>")
            if r.qr:
                svg = io.BytesIO()
                segno.make(r.qr, error="m").save(svg, kind="svg", scale=4, xmldecl=False, svgns=True)
                parts.append(f"<div class='qr' id='qr-{e(r.tag)}'>{svg.getvalue().decode()}</div>"
                             f"<p class='muted'>{e(r.qr)}</p>")
            attempts = self.ledger.attempts_of(r.id)
            if attempts:
                parts.append("<table class='attempts'><tr><th>#</th><th>Действие</th><th>ККТ</th><th>Начато (UTC)</th>"
                             "<th>Итог</th><th>ФД</th><th>Ошибка</th></tr>" + "".join(
                                 f"<tr><td>{a['id']}</td><td>{e(a['action'])}</td><td>{e(a['register'])}</td>"
                                 f"<td>{a['started_at']:%Y-%m-%d %H:%M:%S}</td><td>{e(a['outcome'] or 'не завершено')}</td>"
                                 f"<td>{a['fd_number'] or ''}</td><td>{e(a['error'] or '')}</td></tr>" for a in attempts)
                             + "</table>")
        return _page(f"Платёж {source_id}", "".join(parts))

    # -- totals ------------------------------------------------------------------------------------
    def totals_page(self, query: dict[str, list[str]]) -> Response:
        day_from = _date(_q(query, "from")) or dt.date.today()
        day_to = _date(_q(query, "to")) or day_from
        t = summarize(self.ledger.list_receipts(day_from=day_from, day_to=day_to, limit=MAX_ROWS))
        form = (f"<form method='get' action='/totals'>с <input type='date' name='from' value='{day_from}'>"
                f"по <input type='date' name='to' value='{day_to}'><button type='submit'>Показать</button></form>")
        summary = (f"<table id='summary'><tr><th>Продажи</th><th>Возвраты</th><th>Коррекции</th><th>Итого</th>"
                   f"<th>Без чека</th></tr><tr><td class='n'>{_money(t.sales)}</td><td class='n'>{_money(t.refunds)}</td>"
                   f"<td class='n'>{_money(t.corrections)}</td><td class='n'>{_money(t.net)}</td>"
                   f"<td class='n'>{_money(t.unreceipted_amount)}</td></tr></table>")
        vat = "<h2>По ставкам НДС</h2><table id='by-vat'><tr><th>Ставка</th><th>Сумма</th></tr>" + "".join(
            f"<tr><td>{e(k)}</td><td class='n'>{_money(v)}</td></tr>" for k, v in t.by_vat.items()) + "</table>"
        pay = "<h2>По видам оплаты</h2><table><tr><th>Оплата</th><th>Сумма</th></tr>" + "".join(
            f"<tr><td>{e(k)}</td><td class='n'>{_money(v)}</td></tr>" for k, v in t.by_payment_type.items()) + "</table>"
        missing = "<h2>Деньги без чека</h2><table id='unreceipted'><tr><th>ID платежа</th><th>Метка</th>" \
                  "<th>Состояние</th><th>Сумма</th><th>Причина</th></tr>" + "".join(
                      f"<tr><td><a href='/payment?id={u.source_id}'>{u.source_id}</a></td><td>{e(u.tag)}</td>"
                      f"<td class='state-{u.state}'>{u.state}</td><td class='n'>{_money(u.amount)}</td>"
                      f"<td>{e(u.reason or '')}</td></tr>" for u in t.unreceipted) + "</table>"
        return _page(f"Итоги {day_from}…{day_to} ({self.zone})", form + summary + vat + pay + missing)

    # -- lanes ---------------------------------------------------------------------------------------
    def lanes_page(self, _query: dict[str, list[str]]) -> Response:
        snap = take_snapshot(self.ledger)
        problems = evaluate(snap, self.thresholds)
        rows = "".join(f"<tr><td>{e(lane.name)}</td><td>{e(lane.state)}</td><td>{lane.heartbeat_at or ''}</td>"
                       f"<td>{e(lane.fn_serial or '')}</td><td>{lane.fn_expires_on or ''}</td>"
                       f"<td class='n'>{lane.ofd_unsent if lane.ofd_unsent is not None else ''}</td>"
                       f"<td>{e(lane.reason or '')}</td></tr>" for lane in snap.lanes)
        plist = "".join(f"<li class='problem'>{e(p.message)}</li>" for p in problems) or "<li>всё в порядке</li>"
        return _page("Кассы", "<table id='lanes'><tr><th>ККТ</th><th>Состояние</th><th>Пульс (UTC)</th><th>ФН</th>"
                              "<th>ФН до</th><th>Не отправлено в ОФД</th><th>Причина</th></tr>" + rows
                     + f"</table><h2>Требует внимания</h2><ul id='problems'>{plist}</ul>")

    # -- downloads -------------------------------------------------------------------------------------
    def export_csv(self, query: dict[str, list[str]]) -> Response:
        rows = self.ledger.list_receipts(**self._filters(query), limit=MAX_ROWS)
        out = io.StringIO()
        export.write_csv(rows, out, zone=self.zone)
        return 200, "text/csv; charset=utf-8", out.getvalue().encode("utf-8-sig"), \
            {"Content-Disposition": "attachment; filename=kkt-ledger.csv"}

    def export_xlsx(self, query: dict[str, list[str]]) -> Response:
        rows = self.ledger.list_receipts(**self._filters(query), limit=MAX_ROWS)
        fd, path = tempfile.mkstemp(suffix=".xlsx")
        os.close(fd)
        try:
            export.write_xlsx(rows, path, zone=self.zone)
            with open(path, "rb") as f:
                data = f.read()
        finally:
            os.unlink(path)
        return 200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", data, \
            {"Content-Disposition": "attachment; filename=kkt-ledger.xlsx"}


def install_web_routes(server: OpsServer, ledger: Ledger, zone: str, thresholds: Thresholds = Thresholds()) -> Pages:
    """Mount the accountant's pages on *server*."""
    pages = Pages(ledger, zone, thresholds)
    for path, handler in (("/", pages.ledger_page), ("/payment", pages.payment_page), ("/totals", pages.totals_page),
                          ("/lanes", pages.lanes_page), ("/export.csv", pages.export_csv),
                          ("/export.xlsx", pages.export_xlsx)):
        server.route(path, handler)
    return pages
