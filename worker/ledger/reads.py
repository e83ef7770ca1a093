"""What the admin and the accountant read: counts, status, lists, attempt history (and the timers)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import and_, func, insert, or_, select, true, update

from worker.ledger.base import LedgerBase
from worker.ledger.records import ReceiptRecord, record_from_row
from worker.ledger.schema import (
    attempts,
    gap_log,
    ingest_cursor,
    ingest_gaps,
    lanes,
    payments,
    receipt_marks,
    receipts,
    schedules,
)
from worker.ledger.states import State


class AdminReads(LedgerBase):
    """Read-only views for ``status``, ``ledger list/show/export`` and reports."""

    def counts(self) -> dict[str, int]:
        """Receipts by state."""
        with self.read() as conn:
            return {s: n for s, n in conn.execute(select(receipts.c.state, func.count()).group_by(receipts.c.state))}

    def has_unfinished(self) -> bool:
        """Whether any receipt is queued or sending: ``run --burst``'s "drained" check, asked at every
        idle poll. An index probe (ix_receipts_state_next), not :meth:`counts`' scan of the whole table
        (12 ms a poll on PostgreSQL at 20 000 receipts, measured with auto_explain)."""
        with self.read() as conn:
            return conn.execute(select(select(receipts.c.id).where(
                receipts.c.state.in_((State.QUEUED.value, State.SENDING.value))).exists())).scalar_one()

    def status_details(self) -> dict[str, Any]:
        """Cursor, gaps, expired gaps and lanes for ``status``."""
        with self.read() as conn:
            return {
                "cursors": [dict(r._mapping) for r in conn.execute(select(ingest_cursor))],
                "open_gaps": [dict(r._mapping) for r in conn.execute(select(ingest_gaps).order_by(ingest_gaps.c.id))],
                # an id the sweep found later is no longer an expired gap (kept in gap_log for forensics)
                "expired_gaps": [dict(r._mapping) for r in conn.execute(
                    select(gap_log).where(~gap_log.c.reason.like("swept%")).order_by(gap_log.c.id))],
                "swept_in": [dict(r._mapping) for r in conn.execute(
                    select(gap_log).where(gap_log.c.reason.like("swept%")).order_by(gap_log.c.id))],
                "drifted": [dict(r._mapping) for r in conn.execute(
                    select(payments.c.source_id, payments.c.drift).where(payments.c.drift.is_not(None))
                    .order_by(payments.c.source_id))],
                "lanes": [dict(r._mapping) for r in conn.execute(select(lanes).order_by(lanes.c.name))],
            }

    def list_receipts(self, *, states: Sequence[str] = (), since: dt.datetime | None = None,
                      until: dt.datetime | None = None, source_ids: Sequence[int] = (),
                      limit: int | None = None, offset: int = 0, search: str | None = None,
                      day_from: dt.date | None = None, day_to: dt.date | None = None) -> list[ReceiptRecord]:
        """Receipts in shop-id order, filtered (see :meth:`_filters`); *limit*/*offset* page through them."""
        q = self._select_records().where(self._filters(states, since, until, source_ids, search, day_from, day_to)) \
            .order_by(payments.c.source_id, receipts.c.stage, receipts.c.part)
        if limit:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        with self.read() as conn:
            return [record_from_row(r) for r in conn.execute(q)]

    def count_receipts(self, *, states: Sequence[str] = (), since: dt.datetime | None = None,
                       until: dt.datetime | None = None, source_ids: Sequence[int] = (), search: str | None = None,
                       day_from: dt.date | None = None, day_to: dt.date | None = None) -> int:
        """How many receipts :meth:`list_receipts` would return without a limit (for "shown N of M")."""
        q = select(func.count()).select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id)) \
            .where(self._filters(states, since, until, source_ids, search, day_from, day_to))
        with self.read() as conn:
            return int(conn.execute(q).scalar_one())

    @staticmethod
    def _filters(states: Sequence[str], since: dt.datetime | None, until: dt.datetime | None,
                 source_ids: Sequence[int], search: str | None, day_from: dt.date | None,
                 day_to: dt.date | None) -> Any:
        """State; creation time (UTC); shop ids; a search (shop id, FD number or 1192 tag); the fiscal day
        range (the register's date of a receipt, else the shop's payment date — both the shop's local time)."""
        conds: list[Any] = []
        if states:
            conds.append(receipts.c.state.in_(list(states)))
        if since:
            conds.append(receipts.c.created_at >= since)
        if until:
            conds.append(receipts.c.created_at < until)
        if source_ids:
            conds.append(payments.c.source_id.in_(list(source_ids)))
        if search and search.strip():
            term = search.strip()
            alts = [receipts.c.tag == term]
            if term.isdigit():
                alts += [payments.c.source_id == int(term), receipts.c.fd_number == int(term)]
            conds.append(or_(*alts))
        day = func.coalesce(receipts.c.fiscal_at, payments.c.paid_at)
        if day_from:
            conds.append(day >= dt.datetime.combine(day_from, dt.time()))
        if day_to:
            conds.append(day < dt.datetime.combine(day_to + dt.timedelta(days=1), dt.time()))
        return and_(true(), *conds)

    def attempts_of(self, receipt_id: int) -> list[dict[str, Any]]:
        """The history of one receipt's register calls."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(attempts).where(attempts.c.receipt_id == receipt_id).order_by(attempts.c.id))]

    def marks_of(self, receipt_id: int) -> list[dict[str, Any]]:
        """The FN's check result (2106) of each marked line of one receipt, by line."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(receipt_marks).where(receipt_marks.c.receipt_id == receipt_id).order_by(receipt_marks.c.line))]

    def receipts_of(self, source_id: int) -> list[ReceiptRecord]:
        """Every receipt of shop row *source_id*, by stage and part."""
        return self.list_receipts(source_ids=[source_id])

    def schedule_at(self, name: str) -> dt.datetime | None:
        """When the timer *name* fires next (None if never set)."""
        with self.read() as conn:
            return conn.execute(select(schedules.c.next_at).where(schedules.c.name == name)).scalar()

    def set_schedule(self, name: str, at: dt.datetime) -> None:
        """Set the timer *name* (kept across restarts)."""
        with self.write() as conn:
            if conn.execute(update(schedules).where(schedules.c.name == name).values(next_at=at)).rowcount == 0:
                conn.execute(insert(schedules).values(name=name, next_at=at))
