"""Exports that open right in a spreadsheet: CSV for a Russian locale, XLSX with typed cells, JSON.

Every export carries every fiscal requisite, the shop's payment time, the fiscal time with its zone
(registers keep local time: the column title names the zone) and the QR string. Money is exact:
CSV writes ``1234,50`` (a Russian-locale spreadsheet reads it as a number), XLSX writes a number
cell formatted ``#,##0.00`` from the Decimal, JSON writes a string.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from typing import IO, Any, Iterable, Sequence

from worker.ledger.records import ReceiptRecord

#: (key, Russian title, type) — type is one of text, int, money, time
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("shop_id", "ID платежа", "int"), ("kind", "Вид", "text"), ("stage", "Этап", "text"),
    ("part", "Часть", "int"), ("tag", "Метка 1192", "text"), ("state", "Состояние", "text"),
    ("paid_at", "Оплачен", "utc"), ("payment_amount", "Сумма платежа", "money"), ("total", "Сумма чека", "money"),
    ("register", "ККТ", "text"), ("fn_serial", "ФН", "text"), ("fd_number", "ФД", "int"),
    ("fiscal_sign", "ФП", "int"), ("shift_number", "Смена", "int"), ("receipt_number", "Чек в смене", "int"),
    ("fiscal_at", "Дата чека", "time"), ("qr", "QR", "text"), ("attempts", "Попыток", "int"),
    ("last_error", "Ошибка", "text"),
)


def row(r: ReceiptRecord) -> dict[str, Any]:
    """One receipt as export values (Python types: Decimal, datetime, int, str, None)."""
    return {
        "shop_id": r.source_id, "kind": r.kind, "stage": r.stage, "part": r.part, "tag": r.tag,
        "state": r.state.value, "paid_at": r.paid_at, "payment_amount": r.payment_amount, "total": r.total,
        "register": r.register, "fn_serial": r.fn_serial, "fd_number": r.fd_number, "fiscal_sign": r.fiscal_sign,
        "shift_number": r.shift_number, "receipt_number": r.receipt_number, "fiscal_at": r.fiscal_at,
        "qr": r.qr, "attempts": r.attempts, "last_error": r.last_error,
    }


def titles(zone: str) -> list[str]:
    """Column titles; the time columns say their zone (the ledger keeps the shop's payment time in
    UTC; the fiscal time is the register's clock, kept in the shop's local zone)."""
    return [f"{title} ({zone})" if kind == "time" else f"{title} (UTC)" if kind == "utc" else title
            for _, title, kind in COLUMNS]


def _ru(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "money":
        return f"{Decimal(value):.2f}".replace(".", ",")
    if kind in ("time", "utc"):
        return value.strftime("%d.%m.%Y %H:%M:%S")
    return str(value)


def write_csv(records: Iterable[ReceiptRecord], out: IO[str], *, zone: str) -> int:
    """CSV for a Russian-locale spreadsheet: the caller opens *out* with ``utf-8-sig`` (BOM); ``;``."""
    w = csv.writer(out, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow(titles(zone))
    n = 0
    for r in records:
        d = row(r)
        w.writerow([_ru(d[k], kind) for k, _, kind in COLUMNS])
        n += 1
    return n


def write_xlsx(records: Iterable[ReceiptRecord], path: str, *, zone: str, sheet: str = "Чеки") -> int:
    """An XLSX workbook: dates as dates, money as numbers with two decimals, ids as integers."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(titles(zone))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    n = 0
    for r in records:
        d = row(r)
        # openpyxl writes a Decimal's own digits into a number cell; the format shows two decimals
        ws.append([d[key] for key, _, _ in COLUMNS])
        n += 1
        for col, (_, _, kind) in enumerate(COLUMNS, start=1):
            cell = ws.cell(row=n + 1, column=col)
            if kind == "money" and cell.value is not None:
                cell.number_format = "#,##0.00"
            elif kind in ("time", "utc") and cell.value is not None:
                cell.number_format = "DD.MM.YYYY HH:MM:SS"
    ws.freeze_panes = "A2"
    wb.save(path)
    return n


def to_json(records: Sequence[ReceiptRecord], *, zone: str) -> str:
    """JSON lines-free array: money as strings (exact), times ISO 8601 with the zone's name."""
    def enc(v: Any) -> Any:
        if isinstance(v, Decimal):
            return f"{v:.2f}"
        if isinstance(v, dt.datetime):
            return v.isoformat()
        return v
    return json.dumps({"zone": zone, "receipts": [{k: enc(v) for k, v in row(r).items()} for r in records]},
                      ensure_ascii=False, indent=2)


# -- any report as one flat table (the --output csv of the read commands) --------------------------

#: the columns of a report table: section, key, count, amount, note
REPORT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("section", "Раздел", "text"), ("key", "Показатель", "text"), ("count", "Количество", "int"),
    ("amount", "Сумма", "money"), ("register_amount", "Сумма по ККТ", "money"), ("note", "Примечание", "text"),
)


def write_table(rows: Iterable[dict[str, Any]], out: IO[str],
                columns: Sequence[tuple[str, str, str]] = REPORT_COLUMNS) -> int:
    """Rows of dicts as CSV for a Russian-locale spreadsheet (``;``, decimal comma, dates ДД.ММ.ГГГГ);
    the caller writes the BOM (``utf-8-sig``). Missing keys are empty cells."""
    w = csv.writer(out, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow([title for _, title, _ in columns])
    n = 0
    for r in rows:
        w.writerow([_ru(r.get(key), kind) for key, _, kind in columns])
        n += 1
    return n


def totals_rows(t: Any) -> list[dict[str, Any]]:
    """A :class:`~worker.reports.totals.Totals` as report rows (section, key, count, amount, note)."""
    rows: list[dict[str, Any]] = [
        {"section": "итого", "key": "sales", "amount": t.sales, "count": t.count_done},
        {"section": "итого", "key": "refunds", "amount": t.refunds},
        {"section": "итого", "key": "corrections", "amount": t.corrections},
        {"section": "итого", "key": "net", "amount": t.net},
    ]
    rows += [{"section": "НДС", "key": k, "amount": v} for k, v in t.by_vat.items()]
    rows += [{"section": "вид оплаты", "key": k, "amount": v} for k, v in t.by_payment_type.items()]
    for s in t.by_shift.values():
        rows.append({"section": f"ККТ {s.register} смена {s.shift}", "key": "receipts", "count": s.count})
        rows += [{"section": f"ККТ {s.register} смена {s.shift}", "key": op, "amount": v}
                 for op, v in sorted(s.by_operation.items())]
    rows += [{"section": "состояние", "key": k, "count": n, "amount": a} for k, (n, a) in t.by_state.items()]
    rows += [{"section": "без чека", "key": f"платёж {u.source_id} {u.tag}", "amount": u.amount,
              "note": f"{u.state}: {u.reason or ''}"} for u in t.unreceipted]
    return rows


def counter_rows(check: Any) -> list[dict[str, Any]]:
    """A :class:`~worker.reports.counters.CounterCheck` as report rows: the register's counters
    beside the ledger's, then every difference."""
    head = f"счётчики ККТ {check.register} смена {check.shift}"
    if check.status != "checked":
        return [{"section": head, "key": "недоступны", "note": check.reason}]
    rows: list[dict[str, Any]] = []
    for name, op in check.register_totals.operations.items():
        mine = check.ledger_totals.operations.get(name)
        rows.append({"section": head, "key": name, "count": op.count, "register_amount": op.amount,
                     "amount": mine.amount if mine else None, "note": check.register_totals.source})
        for kind, value in op.by_payment.items():
            rows.append({"section": head, "key": f"{name} {kind}", "register_amount": value,
                         "amount": (mine.by_payment.get(kind) if mine else None)})
    return rows + difference_rows(check.differences)


def difference_rows(diffs: Iterable[Any]) -> list[dict[str, Any]]:
    """Differences (:class:`~worker.reports.reconcile.Difference`) as report rows."""
    return [{"section": "расхождение", "key": d.kind + (f" ФД {d.fd_number}" if d.fd_number else "")
             + (f" {d.tag}" if d.tag else ""), "amount": d.ledger_total, "register_amount": d.register_total,
             "note": d.note + (" — " + "; ".join(d.receipts) if getattr(d, "receipts", ()) else "")}
            for d in diffs]
