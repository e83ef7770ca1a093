"""The ledger: the only place ingest and the lanes meet. Every read and write of it lives here.

| module                                     | job                                                    |
|--------------------------------------------|--------------------------------------------------------|
| ``schema`` / ``db`` / ``migrate``          | tables, engines (SQLite durability, PostgreSQL), alembic |
| ``states``                                 | the receipt state machine (every change goes through it) |
| ``records``                                | ingest entries, gaps, receipt records (pure data)       |
| ``base`` / ``ingest_writes`` / ``lane_writes`` / ``reads`` | plumbing and compare-and-set, what ingest writes, what lanes write (``due``), what the admin reads |
| ``store``                                  | ``Ledger``, assembled from the above                    |
| ``runlock``                                | one worker per ledger                                   |

May import: ``worker.receipts`` (stages and prerequisites), ``worker.shop`` (row types), the base modules.
"""
