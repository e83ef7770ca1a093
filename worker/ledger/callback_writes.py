"""The shop-callback queue: one row per receipt and final state, delivered once."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select, update

from worker.ledger.base import LedgerBase
from worker.ledger.records import ReceiptRecord, record_from_row
from worker.ledger.schema import callbacks, receipts
from worker.ledger.states import State

#: the states a shop hears about (the receipt is made, or it needs the shop's or a person's attention)
CALLBACK_STATES = (State.DONE.value, State.REJECTED.value, State.NEEDS_REVIEW.value)
ENQUEUE_BATCH = 500


class CallbackWrites(LedgerBase):
    """Queue and delivery state of shop callbacks."""

    def enqueue_callbacks(self, now: dt.datetime, batch: int = ENQUEUE_BATCH) -> int:
        """Queue a callback for every receipt in a callback state that has none for that state yet."""
        with self.write() as conn:
            fresh = conn.execute(select(receipts.c.id, receipts.c.state).where(
                receipts.c.state.in_(CALLBACK_STATES),
                ~select(callbacks.c.receipt_id).where(callbacks.c.receipt_id == receipts.c.id,
                                                      callbacks.c.state == receipts.c.state).exists(),
            ).limit(batch)).all()
            if fresh:
                conn.execute(insert(callbacks), [
                    {"receipt_id": rid, "state": state, "created_at": now, "attempts": 0, "next_try_at": now}
                    for rid, state in fresh])
        return len(fresh)

    def callbacks_due(self, now: dt.datetime, limit: int = 100) -> list[tuple[str, ReceiptRecord]]:
        """(state called back, the receipt as it is now) for undelivered callbacks whose try is due."""
        q = self._select_records().add_columns(callbacks.c.state.label("cb_state")).join(
            callbacks, callbacks.c.receipt_id == receipts.c.id).where(
            callbacks.c.delivered_at.is_(None), callbacks.c.next_try_at <= now,
        ).order_by(callbacks.c.next_try_at, callbacks.c.receipt_id).limit(limit)
        with self.read() as conn:
            out = []
            for row in conn.execute(q):
                m = dict(row._mapping)
                state = m.pop("cb_state")
                out.append((state, record_from_row(_Row(m))))
            return out

    def callback_delivered(self, receipt_id: int, state: str, now: dt.datetime) -> None:
        with self.write() as conn:
            conn.execute(update(callbacks).where(callbacks.c.receipt_id == receipt_id, callbacks.c.state == state,
                                                 callbacks.c.delivered_at.is_(None))
                         .values(delivered_at=now, attempts=callbacks.c.attempts + 1, last_error=None))

    def callback_failed(self, receipt_id: int, state: str, error: str, next_try_at: dt.datetime) -> None:
        with self.write() as conn:
            conn.execute(update(callbacks).where(callbacks.c.receipt_id == receipt_id, callbacks.c.state == state)
                         .values(attempts=callbacks.c.attempts + 1, next_try_at=next_try_at, last_error=error[:2000]))

    def callback_rows(self, receipt_id: int) -> list[dict]:
        """The callback history of one receipt (for ``ledger show`` and tests)."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(callbacks).where(callbacks.c.receipt_id == receipt_id).order_by(callbacks.c.created_at))]


class _Row:
    """Adapts a plain mapping to what :func:`record_from_row` reads (``row._mapping``)."""

    def __init__(self, mapping: dict) -> None:
        self._mapping = mapping
