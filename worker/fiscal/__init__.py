"""Stage two: one lane per register turns due receipts into fiscal documents, exactly once.

``lane`` (the loop: recovery first, then one due receipt at a time), ``processor`` (intent →
fiscalize → outcome), ``recovery`` (reconcile "sending" receipts with the register), ``retry``
(``decide``: what happens after an error), ``crashpoints`` (tests' kill points). May import:
``worker.ledger``, the base modules, ``kkt_drivers``.
"""
