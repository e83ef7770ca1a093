"""The domain, pure (no database, no register): what a shop row becomes.

| module          | job                                                                        |
|-----------------|----------------------------------------------------------------------------|
| ``build``       | shop row → 54-FZ receipts: the entry point, dispatches by kind and flow    |
| ``sale``        | a sale row validated: date, amount, lines, discount, credit split (1216)   |
| ``item``        | one item row → one receipt line, field by field                            |
| ``contact``     | 1008: the e-mail, else the phone                                           |
| ``prepayment``  | the prepayment flow: prepayment lines, the settlement receipts             |
| ``refunds``     | a refund mirroring the sale's lines as issued                              |
| ``issued``      | what a sale's receipts carried, what refunds took (cumulative rounding)    |
| ``assemble``    | lines → planned receipts: parts, payments, tags (1192), late → correction  |
| ``rules``       | the mapping rules: VAT, 1214/1212, units, dates, aliases                   |
| ``config``      | ReceiptConfig, the flows, tags (1192)                                      |
| ``discounts``   | an order-level discount spread over the lines                              |
| ``plan``        | stages, what a receipt waits for, the planned rows the ledger stores       |
| ``corrections`` | correction receipts (missed, reverse pair): the rules, ``correction_of``   |

May import: ``worker.shop`` (row types), the base modules, ``kkt_drivers`` (the receipt model).
"""
