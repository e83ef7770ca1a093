"""The accountant's read-only web page, served by the worker's HTTP server (worker/ops/http.py).

Server-rendered HTML, no scripts, no build step: the ledger with filters and search, a payment's
page (receipts, attempt history, the receipt's QR code), totals per day and rate, lanes and their
health, CSV/XLSX downloads. It only reads the ledger.
"""
