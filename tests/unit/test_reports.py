"""Accountant's totals and the shift reconciliation (pure)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from kkt_drivers import receipt_json
from kkt_drivers.receipt import (
    Correction, DocumentKind, FiscalDocument, Item, Operation, Payment, PaymentType, Receipt, TaxSystem, Vat,
)
from worker.ledger.records import ReceiptRecord
from worker.ledger.states import State
from worker.reports.reconcile import reconcile_shift
from worker.reports.totals import summarize

T0 = dt.datetime(2026, 11, 30, 10)
D = Decimal


def body(tag: str, op: Operation, lines: list[tuple[str, Vat]], pay: PaymentType = PaymentType.ELECTRONIC,
         correction: bool = False) -> str:
    items = tuple(Item("x", D(a), D(1), D(a), v) for a, v in lines)
    total = sum((D(a) for a, _ in lines), D(0))
    fix = Correction(True, dt.date(2026, 11, 1), "") if correction else None
    return receipt_json.dumps(Receipt(op, TaxSystem.OSN, items, (Payment(pay, total),), tag=tag,
                                      customer_contact="a@b.ru", correction=fix))


def rec(n: int, state: State, total: str | None, body_: str | None, *, fd: int | None = None,
        shift: int | None = 1, error: str | None = None, register: str = "kkt1") -> ReceiptRecord:
    return ReceiptRecord(
        id=n, source_id=n, payment_id=n, stage="single", part=1, tag=f"S{n}", state=state, register=register,
        attempts=0, next_attempt_at=T0, total=D(total) if total else None, body=body_, fn_serial="FN1",
        fd_before=None, fd_number=fd, fiscal_sign=1000 + n if fd else None, shift_number=shift if fd else None,
        receipt_number=None, fiscal_at=T0 if fd else None, qr=None, error_class=None, last_error=error,
        kind="sale", refund_of=None, created_at=T0, updated_at=T0)


def ledger_sample() -> list[ReceiptRecord]:
    return [
        rec(1, State.DONE, "1220.00", body("S1", Operation.SALE, [("1000.00", Vat.VAT22), ("220.00", Vat.NONE)]), fd=5),
        rec(2, State.DONE, "500.00", body("S2", Operation.SALE, [("500.00", Vat.VAT10)], PaymentType.CASH), fd=6),
        rec(3, State.DONE, "220.00", body("S3", Operation.SALE_REFUND, [("220.00", Vat.NONE)]), fd=7),
        rec(4, State.DONE, "100.00", body("S4", Operation.SALE, [("100.00", Vat.VAT22)], correction=True), fd=8),
        rec(5, State.REJECTED, "300.00", body("S5", Operation.SALE, [("300.00", Vat.VAT22)]),
            error="items[1].vat: 'vat18' is unknown"),
        rec(6, State.FAILED, "42.50", body("S6", Operation.SALE, [("42.50", Vat.VAT22)]), error="link down"),
        rec(7, State.REJECTED, None, None, error="amount: missing"),
    ]


def test_refunds_are_subtracted_and_money_without_a_receipt_is_listed() -> None:
    t = summarize(ledger_sample())
    assert (t.sales, t.refunds, t.corrections, t.net) == (D("1720.00"), D("220.00"), D("100.00"), D("1600.00"))
    assert t.count_done == 4
    assert t.by_state == {"done": (4, D("2040.00")), "failed": (1, D("42.50")), "rejected": (2, D("300.00"))}
    assert [(u.source_id, u.state, u.amount) for u in t.unreceipted] == \
        [(6, "failed", D("42.50")), (5, "rejected", D("300.00")), (7, "rejected", None)]
    assert t.unreceipted[1].reason == "items[1].vat: 'vat18' is unknown"
    assert t.unreceipted_amount == D("342.50")


def test_sums_per_vat_rate_and_payment_type_are_signed() -> None:
    t = summarize(ledger_sample())
    assert t.by_vat == {"none": D("0.00"), "vat10": D("500.00"), "vat22": D("1100.00")}
    assert t.by_payment_type == {"cash": D("500.00"), "electronic": D("1100.00")}
    assert sum(t.by_vat.values()) == t.net == sum(t.by_payment_type.values())
    shift = t.by_shift[("kkt1", 1)]
    assert shift.count == 4 and shift.by_operation["sale"] == D("1820.00")


def doc(fd: int, tag: str | None, total: str, op: Operation = Operation.SALE) -> FiscalDocument:
    return FiscalDocument(fd, 1000 + fd, "FN1", DocumentKind.RECEIPT, T0, 1, operation=op, total=D(total), tag=tag)


def test_a_matching_shift_has_no_differences() -> None:
    records = ledger_sample()[:3]
    docs = [doc(5, "S1", "1220.00"), doc(6, "S2", "500.00"), doc(7, "S3", "220.00", Operation.SALE_REFUND)]
    assert reconcile_shift(records, docs, {"sale": D("1720.00"), "sale_refund": D("220.00")}) == []


def test_a_deliberate_mismatch_shows_every_difference() -> None:
    records = ledger_sample()[:3]
    records[1] = dataclasses.replace(records[1], total=D("499.00"))          # the ledger is off by a rouble
    docs = [doc(5, "S1", "1220.00"), doc(6, "S2", "500.00"), doc(9, "X77", "75.00")]  # FD 7 lost, 9 foreign
    diffs = {(d.kind, d.fd_number) for d in reconcile_shift(records, docs, {"sale": D("1800.00")})}
    assert diffs == {("total_differs", 6), ("missing_in_ledger", 9), ("missing_on_register", 7),
                     ("counter_differs", None)}


# -- exports ---------------------------------------------------------------------------------

def test_csv_is_for_a_russian_spreadsheet_and_xlsx_has_typed_cells(tmp_path) -> None:
    import io

    from openpyxl import load_workbook

    from worker.reports.export import COLUMNS, write_csv, write_xlsx

    records = [dataclasses.replace(r, paid_at=T0, payment_amount=r.total) for r in ledger_sample()]
    buf = io.StringIO()
    assert write_csv(records, buf, zone="Europe/Moscow") == len(records)
    lines = buf.getvalue().split("\r\n")
    assert lines[0].split(";")[6] == "Оплачен (UTC)" and lines[0].split(";")[15] == "Дата чека (Europe/Moscow)"
    first = lines[1].split(";")
    assert first[8] == "1220,00" and first[6] == "30.11.2026 10:00:00" and first[11] == "5"
    path = tmp_path / "ledger.xlsx"
    write_xlsx(records, str(path), zone="Europe/Moscow")
    ws = load_workbook(path).active
    keys = [k for k, _, _ in COLUMNS]
    total = ws.cell(row=2, column=keys.index("total") + 1)
    when = ws.cell(row=2, column=keys.index("fiscal_at") + 1)
    assert total.value == 1220 and total.number_format == "#,##0.00"   # a number, not text
    assert isinstance(when.value, dt.datetime) and when.value == T0        # a date, not text
    assert ws.cell(row=2, column=keys.index("fd_number") + 1).value == 5
    assert ws.max_row == len(records) + 1


# -- the register's own counters -----------------------------------------------------------------

def _counters(sale: str, refund: str, *, cash: str = "500.00", count: int = 2) -> Any:
    from kkt_drivers.counters import OperationTotals, ShiftTotals

    electronic = D(sale) - D(cash)
    return ShiftTotals(1, {"sale": OperationTotals(count, D(sale), {"cash": D(cash), "electronic": electronic}),
                           "sale_refund": OperationTotals(1, D(refund), {"electronic": D(refund)}),
                           "expense": OperationTotals(0, D("0.00")), "expense_refund": OperationTotals(0, D("0.00"))},
                       "test counters")


def test_counters_that_match_the_ledger_have_no_differences() -> None:
    from worker.reports.counters import compare_counters

    records = ledger_sample()[:3]
    check = compare_counters("kkt1", records, _counters("1720.00", "220.00"))
    assert check.status == "checked" and check.differences == []
    assert check.ledger_totals.operations["sale"].by_payment == {"cash": D("500.00"), "electronic": D("1220.00")}


def test_a_counter_that_drifts_from_its_own_documents_is_reported_with_why() -> None:
    from worker.reports.counters import compare_counters

    records = ledger_sample()[:3]
    docs = [doc(5, "S1", "1220.00"), doc(6, "S2", "500.00"), doc(7, "S3", "220.00", Operation.SALE_REFUND)]
    check = compare_counters("kkt1", records, _counters("1721.00", "220.00", cash="501.00", count=3), docs)
    got = {(d.kind, d.ledger_total, d.register_total) for d in check.differences}
    assert got == {("counter_differs", D("1720.00"), D("1721.00")), ("counter_count_differs", None, None),
                   ("payment_differs", D("500.00"), D("501.00"))}
    assert all("its own counter disagrees" in d.note for d in check.differences if d.kind != "payment_differs")


def test_a_counter_difference_names_the_receipts_the_documents_point_at() -> None:
    from worker.reports.counters import compare_counters

    records = ledger_sample()[:3]
    records[1] = dataclasses.replace(records[1], total=D("499.00"))      # the ledger is off by a rouble
    docs = [doc(5, "S1", "1220.00"), doc(6, "S2", "500.00"), doc(7, "S3", "220.00", Operation.SALE_REFUND)]
    doc_diffs = reconcile_shift(records, docs)
    check = compare_counters("kkt1", records, _counters("1720.00", "220.00"), docs, doc_diffs)
    sale = [d for d in check.differences if d.kind == "counter_differs"]
    assert len(sale) == 1 and sale[0].ledger_total == D("1719.00") and sale[0].register_total == D("1720.00")
    assert sale[0].receipts == ("FD 6 tag S2 (total_differs)",)


def test_the_memory_register_counts_its_shift_and_a_tampered_counter_shows() -> None:
    from kkt_drivers.memory import MemoryDriver

    drv = MemoryDriver()
    drv.open_shift()
    for rec in ledger_sample()[:3]:
        drv.fiscalize(rec.receipt())
    totals = drv.shift_totals()
    assert totals is not None and totals.amounts()["sale"] == D("1720.00") and totals.amount("sale_refund") == D("220.00")
    assert totals.operations["sale"].count == 2 and not totals.final
    drv.register.counter_skew = {"sale": {"amount": "-0.01", "payment": "cash"}}
    skewed = drv.shift_totals(1)
    assert skewed is not None and skewed.operations["sale"].by_payment["cash"] == D("499.99")
    drv.close_shift()
    assert drv.shift_totals(1).final and drv.shift_totals(2) is None


def test_a_register_without_counters_is_listed_not_passed() -> None:
    """A driver that cannot read counters (a cloud service) and a shift the register no longer holds
    are both "not available" with the reason; the report never treats them as checked."""
    from kkt_drivers.atol_online.driver import AtolOnlineDriver
    from kkt_drivers.memory import MemoryDriver
    from worker.cli.reports import read_counters

    assert AtolOnlineDriver.reads_counters is False
    cloud = MemoryDriver()
    cloud.reads_counters = False
    check = read_counters(cloud, "cloud1", 1, ledger_sample()[:3])
    assert check.status == "not_available" and "cannot read" in (check.reason or "") and not check.differences
    drv = MemoryDriver()
    drv.open_shift()
    gone = read_counters(drv, "kkt1", 7, ledger_sample()[:3])
    assert gone.status == "not_available" and "no longer holds shift 7" in (gone.reason or "")
