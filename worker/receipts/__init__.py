"""The domain, pure (no database, no register): what a shop row becomes.

| module        | job                                                                          |
|---------------|------------------------------------------------------------------------------|
| ``build``     | shop row → 54-FZ receipts (sale, prepayment, settlement, refund), validation |
| ``rules``     | the mapping rules: VAT, 1214/1212, units, dates, aliases                     |
| ``config``    | ReceiptConfig, the flows, tags (1192)                                        |
| ``discounts`` | an order-level discount spread over the lines                                |
| ``plan``      | stages, what a receipt waits for, the planned rows the ledger stores         |
| ``corrections`` | correction receipts (missed, reverse pair): the rules                      |

May import: ``worker.shop`` (row types), the base modules, ``kkt_drivers`` (the receipt model).
"""
