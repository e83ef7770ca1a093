"""Stage one: shop rows → planned receipts in the ledger, nothing skipped, nothing twice.

``poller`` (payments and deliveries, by composition over ``TablePoll``), ``gaps`` (the cursor + gap
arithmetic, pure), ``planner`` (a row's receipts, refunds looking up their sale). Never touches a
register. May import: ``worker.ledger``, ``worker.receipts``, ``worker.shop``, the base modules.
"""
