"""The accountant's room: totals from the ledger, reconciled with the registers' own documents.

| module      | job                                                                      |
|-------------|--------------------------------------------------------------------------|
| ``totals``  | sales, refunds, corrections and net; per register/shift, VAT rate, payment type; money without a receipt (pure) |
| ``reconcile`` | the ledger's documents of a shift against the register's, difference by difference (pure) |
| ``counters`` | the ledger's sums of a shift against the register's own counters (Z report, FN, cash registers) (pure) |
| ``export``  | CSV for a Russian-locale spreadsheet, XLSX, JSON; :func:`export.write_table` for any report's rows |
"""
