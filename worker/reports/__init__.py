"""The accountant's room: totals from the ledger, reconciled with the registers' own documents.

| module      | job                                                                      |
|-------------|--------------------------------------------------------------------------|
| ``totals``  | sales, refunds, corrections and net; per register/shift, VAT rate, payment type; money without a receipt (pure) |
| ``reconcile`` | the ledger's documents of a shift against the register's, difference by difference (pure) |
"""
