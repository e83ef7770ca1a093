"""The accountant's pages over HTTP (fast, no browser): content, filters, exports, QR."""
from __future__ import annotations

import io
from decimal import Decimal

import httpx
from openpyxl import load_workbook


def test_the_ledger_page_pages_and_says_how_many(served: str) -> None:
    page = httpx.get(f"{served}/").text
    assert "Показаны 1–50 из 60" in page and "стр. 1 из 2" in page
    assert httpx.get(f"{served}/?page=2").text.count("<tr><td class='n'><a href='/payment?id=") == 10


def test_search_and_state_filters(served: str) -> None:
    page = httpx.get(f"{served}/", params={"q": "S17"}).text
    assert "Показаны 1–1 из 1" in page and "/payment?id=17" in page
    page = httpx.get(f"{served}/", params={"state": "rejected"}).text
    assert "Показаны 1–1 из 1" in page and "vat18" in page


def test_a_payment_page_has_its_qr_code_and_attempts(served: str) -> None:
    page = httpx.get(f"{served}/payment", params={"id": "3"}).text
    assert "<svg" in page and "t=" in page and "&amp;fp=" in page and "send" in page
    assert httpx.get(f"{served}/payment", params={"id": "999"}).status_code == 404


def test_totals_show_money_without_a_receipt(served: str) -> None:
    page = httpx.get(f"{served}/totals", params={"from": "2026-11-01", "to": "2026-12-31"}).text
    assert "id='unreceipted'" in page and "vat18" in page and "queued" in page


def test_exports_download_and_open_in_a_spreadsheet_library(served: str) -> None:
    csv = httpx.get(f"{served}/export.csv", params={"state": "done"})
    assert csv.headers["content-disposition"] == "attachment; filename=kkt-ledger.csv"
    assert csv.content.startswith(b"\xef\xbb\xbf") and len(csv.text.strip().splitlines()) == 58
    xlsx = httpx.get(f"{served}/export.xlsx", params={"q": "S5"})
    ws = load_workbook(io.BytesIO(xlsx.content)).active
    assert ws.max_row == 2 and ws.cell(row=2, column=1).value == 5
    assert Decimal(str(ws.cell(row=2, column=9).value)) == Decimal("105.50")
