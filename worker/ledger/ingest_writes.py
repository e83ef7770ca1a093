"""What ingest (and the admin's backfill, resend and corrections) writes: payments and planned receipts."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import Connection, bindparam, insert, select, update

from kkt_drivers import receipt_json
from worker.defaults import DEFAULT_REGISTER_GROUP
from worker.errors import StateConflict
from worker.ledger import fastpath
from worker.ledger.documents import DocumentWrites
from worker.ledger.leases import Fence
from worker.ledger.records import (
    Gap, IngestEntry, PlannedRow, ReceiptRecord, SettlementEntry, decimal_or_none, naive_utc, record_from_row,
    utcnow,
)
from worker.ledger.schema import (
    KIND_CHARS, REASON_CHARS, gap_log, ingest_cursor, ingest_gaps, payments, receipts, register_documents,
)
from worker.ledger.states import REPLANNABLE, State
from worker.receipts.plan import Stage, prerequisite
from worker.shop.rows import ShopPayment


class IngestWrites(DocumentWrites):
    """Payments, planned receipts, the ingest cursor and gaps."""

    def ingest_position(self, source: str) -> tuple[int, list[Gap]]:
        """The cursor and the open gaps of *source*."""
        with self.read() as conn:
            cursor = conn.execute(_CURSOR_OF, {"b_source": source}).scalar()
            gaps = [Gap(r.id, r.first_seen_at) for r in conn.execute(_GAPS_OF, {"b_source": source})]
        return int(cursor or 0), gaps

    def apply_ingest(self, source: str, *, cursor: int, new_gaps: Sequence[int], filled: Sequence[int],
                     expired: Sequence[Gap], entries: Sequence[IngestEntry], now: dt.datetime,
                     expected_cursor: int, untracked: Sequence[tuple[int, int]] = (),
                     settlements: Sequence[SettlementEntry] = (),
                     rejected: Sequence[tuple[int, str]] = (), fence: Fence | None = None) -> int:
        """Record one poll in ONE transaction: rows, receipts, cursor, gaps. Returns rows added.

        ``expected_cursor`` guards against two ingesters racing: the cursor must not have moved.
        ``fence`` (cluster mode: the ingest lease) is checked first, its lease row locked until commit:
        an ingester whose lease was taken over (it froze, its link stalled) writes nothing — LeaseLost —
        so it can never move the cursor back or reopen gaps another ingester has closed.
        A poll that changes nothing (no rows, same cursor, no gap found, opened or expired) writes
        nothing once this process has recorded the cursor: an idle worker does not rewrite the ledger
        every second (the open gaps' check counters are brought up to date by the next poll that writes).
        """
        recorded: set[str] = self.__dict__.setdefault("_cursor_recorded", set())
        if (source in recorded and cursor == expected_cursor
                and not (entries or settlements or rejected or new_gaps or filled or expired or untracked)):
            return 0
        with self.write() as conn:
            self.check_fence(conn, fence)
            current = conn.execute(_CURSOR_OF, {"b_source": source}).scalar()
            if int(current or 0) != expected_cursor:
                raise StateConflict(f"ingest cursor of {source} moved from {expected_cursor} to {current}")
            added = self._insert_entries(conn, entries, now)
            added += self._insert_settlements(conn, settlements, now)
            logged = set(conn.execute(select(gap_log.c.id).where(
                gap_log.c.source == source, gap_log.c.id.in_([i for i, _ in rejected]))).scalars()) if rejected else set()
            for row_id, reason in rejected:
                if row_id not in logged:  # rows that cannot become receipts at all, with the reason
                    conn.execute(insert(gap_log).values(source=source, id=row_id, first_seen_at=now, expired_at=now,
                                                        reason=reason[:REASON_CHARS]))
            if current is None:
                conn.execute(insert(ingest_cursor).values(source=source, last_id=cursor, updated_at=now))
            else:
                conn.execute(_CURSOR_UPDATE, {"b_source": source, "b_cursor": cursor, "b_now": now})
            gone = set(filled) | {g.id for g in expired}
            if gone:
                conn.execute(ingest_gaps.delete().where(ingest_gaps.c.source == source,
                                                        ingest_gaps.c.id.in_(sorted(gone))))
            if new_gaps:
                conn.execute(insert(ingest_gaps), [
                    {"source": source, "id": i, "first_seen_at": now, "last_checked_at": now, "checks": 0}
                    for i in new_gaps])
            for g in expired:
                conn.execute(insert(gap_log).values(source=source, id=g.id, first_seen_at=g.first_seen_at,
                                                    expired_at=now, reason="expired"))
            for lo, hi in untracked:
                conn.execute(insert(gap_log).values(source=source, id=lo, first_seen_at=now, expired_at=now,
                                                    reason=f"untracked range {lo}..{hi}"))
            # every open gap was rechecked by primary key in this poll
            conn.execute(_GAPS_CHECKED, {"b_source": source, "b_now": now})
        recorded.add(source)
        return added

    def add_payments(self, entries: Sequence[IngestEntry], *, fence: Fence | None = None) -> int:
        """Insert payments outside the polling cursor (backfill, the sweep); existing source ids are left
        alone. ``fence``: the ingest lease in cluster mode (the sweep), checked in the same transaction."""
        with self.write() as conn:
            self.check_fence(conn, fence)
            return self._insert_entries(conn, entries, utcnow())

    def _insert_entries(self, conn: Connection, entries: Sequence[IngestEntry], now: dt.datetime) -> int:
        """Insert the payments of *entries* not in the ledger yet, with their planned receipts.

        A poll's rows go in as ONE multi-row INSERT per table (SQLAlchemy's insertmanyvalues, with
        RETURNING), not one statement per row: a 500-row poll holds the ledger's single write lock
        (SQLite) a fraction of the time, and the lanes' intents and outcomes wait less behind it.
        """
        if not entries:
            return 0
        ids = [e.payment.id for e in entries]
        existing = set(conn.execute(_KNOWN_AMONG, {"b_ids": ids}).scalars())
        fresh: list[IngestEntry] = []
        for e in entries:
            if e.payment.id in existing:
                continue  # idempotent by source id: a re-read row changes nothing
            existing.add(e.payment.id)
            fresh.append(e)
        if not fresh:
            return 0
        rows = [dict(source_id=e.payment.id, kind=str(e.payment.kind)[:KIND_CHARS],
                     amount=decimal_or_none(e.payment.amount), paid_at=naive_utc(e.payment.paid_at),
                     refund_of=e.payment.refund_of if isinstance(e.payment.refund_of, int) else None,
                     snapshot=e.payment.snapshot(), ingested_at=now)
                for e in fresh]
        pids = dict(fastpath.insert_many(conn, payments, _PAYMENTS_RETURNING, rows))   # source_id → ledger id
        self._insert_planned_many(conn, [(pids[e.payment.id], e.planned, e.payment.id, e.payment.refund_of)
                                         for e in fresh], now)
        return len(fresh)

    def _insert_settlements(self, conn: Connection, settlements: Sequence[SettlementEntry], now: dt.datetime) -> int:
        """Settlement receipts under their payments; a payment already settled keeps its first settlement."""
        added = 0
        for s in settlements:
            if s.payment is not None:
                self._insert_entries(conn, [s.payment], now)
            pid = conn.execute(select(payments.c.id).where(payments.c.source_id == s.source_id)).scalar()
            if pid is None:
                raise ValueError(f"delivery {s.delivery_id}: payment {s.source_id} is not in the ledger")
            stages = {(r.stage, r.part) for r in conn.execute(
                select(receipts.c.stage, receipts.c.part).where(receipts.c.payment_id == pid))}
            fresh = [p for p in s.planned if (p.stage, p.part) not in stages]
            if len(fresh) < len(s.planned):
                continue  # a second delivery row (or a re-read one) for a settled payment changes nothing
            self._insert_planned(conn, pid, self._inherit_group(conn, pid, fresh), now, source_id=s.source_id)
            added += 1
        return added

    def _insert_planned(self, conn: Connection, payment_id: int, planned: Sequence[PlannedRow], now: dt.datetime, *,
                        source_id: int, refund_of: Any = None) -> None:
        self._insert_planned_many(conn, [(payment_id, planned, source_id, refund_of)], now)

    def _insert_planned_many(self, conn: Connection,
                             batch: Sequence[tuple[int, Sequence[PlannedRow], int, Any]], now: dt.datetime) -> None:
        """Insert (payment id, planned receipts, source id, refund_of) in one multi-row INSERT; a queued
        receipt whose tag a register already holds (a lost or restored ledger) is adopted, never printed."""
        rows, queued = [], []
        for payment_id, planned, source_id, refund_of in batch:
            for p in planned:
                state = State.DONE if p.issued_elsewhere else State.QUEUED if p.receipt else State.REJECTED
                rows.append(dict(
                    corrects_tag=p.corrects_tag, corrects_fiscal_sign=p.corrects_fiscal_sign,
                    payment_id=payment_id, stage=str(p.stage), part=p.part, tag=p.tag, register_group=p.group,
                    state=state.value, attempts=0, next_attempt_at=now, created_at=now, updated_at=now,
                    **_plan_values(p, source_id, refund_of)))
                if state is State.QUEUED:
                    queued.append(p.tag)
        if not rows:
            return
        rids = dict(fastpath.insert_many(conn, receipts, _RECEIPTS_RETURNING, rows))   # tag → ledger id
        # one look for all the batch's tags (almost always none): claim_for only where one is unclaimed
        for tag in self._unclaimed_tags(conn, queued):
            self.claim_for(conn, rids[tag], tag, now)

    @staticmethod
    def _unclaimed_tags(conn: Connection, tags: Sequence[str]) -> list[str]:
        """The tags among *tags* that an examined register document carries, waiting for their receipt."""
        found: set[str] = set()
        for i in range(0, len(tags), _TAGS_PER_QUERY):
            found.update(conn.execute(_UNCLAIMED_AMONG, {"b_tags": list(tags[i:i + _TAGS_PER_QUERY])}).scalars())
        return [t for t in tags if t in found]

    def payment_snapshot(self, source_id: int) -> ShopPayment | None:
        """The stored snapshot of shop row *source_id*, if ingested."""
        with self.read() as conn:
            snap = conn.execute(select(payments.c.snapshot).where(payments.c.source_id == source_id)).scalar()
        return ShopPayment.from_json(json.loads(snap)) if snap else None

    def refunded_quantities(self, original_source_id: int, *, excluding: int | None = None) -> dict[Any, Decimal]:
        """Quantities per original line already refunded by other refund rows (not rejected)."""
        out: dict[Any, Decimal] = {}
        with self.read() as conn:
            rows = conn.execute(
                select(payments.c.source_id, payments.c.snapshot).where(
                    payments.c.refund_of == original_source_id, payments.c.kind == "refund",
                    ~select(receipts.c.id).where(receipts.c.payment_id == payments.c.id,
                                                 receipts.c.state == State.REJECTED.value).exists()))
            for source_id, snap in rows:
                if source_id == excluding:
                    continue
                for item in ShopPayment.from_json(json.loads(snap)).items:
                    try:
                        out[item.line_no] = out.get(item.line_no, Decimal(0)) + Decimal(item.quantity)
                    except Exception:  # a malformed refund row was rejected; it refunds nothing
                        continue
        return out

    def refunds_of(self, original_source_id: int) -> list[ReceiptRecord]:
        """Every receipt of the refund rows that name shop row *original_source_id* (cumulative refunds)."""
        q = self._select_records().where(payments.c.refund_of == original_source_id, payments.c.kind == "refund")
        with self.read() as conn:
            return [record_from_row(r) for r in conn.execute(q.order_by(payments.c.source_id, receipts.c.part))]

    def replan(self, source_id: int, payment: ShopPayment, planned: Sequence[PlannedRow]) -> int:
        """Rebuild the not-done receipts of a payment from a fresh plan (admin resend, a late sale).
        Returns the count queued.

        Every change is a guarded transition (:data:`~worker.ledger.states.REPLANNABLE` → queued,
        rejected or superseded); done, queued and sending receipts are never touched, and no row or
        attempt is ever deleted.
        """
        now = utcnow()
        queued = 0
        with self.write() as conn:
            pid = conn.execute(select(payments.c.id).where(payments.c.source_id == source_id)).scalar_one()
            conn.execute(update(payments).where(payments.c.id == pid).values(
                snapshot=payment.snapshot(), refetched_at=now,
                amount=decimal_or_none(payment.amount), drift=None))
            current = {(r.stage, r.part): r for r in conn.execute(
                select(receipts.c.id, receipts.c.stage, receipts.c.part, receipts.c.state)
                .where(receipts.c.payment_id == pid))}
            wanted = {(str(p.stage), p.part) for p in planned}
            replannable = {s.value for s in REPLANNABLE}
            for key, r in current.items():
                if r.state in replannable and r.state != State.SUPERSEDED.value and key not in wanted:
                    # a part the new plan no longer has (it was never fiscalized): kept, with its history
                    self._cas(conn, r.id, State(r.state), State.SUPERSEDED,
                              last_error="superseded: the new plan of the payment has no such receipt")
            for p in planned:
                r = current.get((str(p.stage), p.part))
                if r is None:
                    self._insert_planned(conn, pid, [p], now, source_id=source_id, refund_of=payment.refund_of)
                    queued += p.receipt is not None
                elif r.state in replannable:
                    new = State.QUEUED if p.receipt else State.REJECTED
                    self._cas(conn, r.id, State(r.state), new, tag=p.tag, attempts=0, next_attempt_at=now,
                              register=None, register_group=p.group, **_plan_values(p, source_id, payment.refund_of))
                    queued += p.receipt is not None
        return queued

    @staticmethod
    def _inherit_group(conn: Connection, payment_id: int, planned: Sequence[PlannedRow]) -> list[PlannedRow]:
        """Receipts added to a payment later (settlement, correction) go to the payment's register group:
        the same legal entity must print them."""
        group = conn.execute(select(receipts.c.register_group).where(receipts.c.payment_id == payment_id)
                             .order_by(receipts.c.id).limit(1)).scalar()
        if group is None:
            return list(planned)
        return [dataclasses.replace(p, group=group) if p.group == DEFAULT_REGISTER_GROUP else p for p in planned]

    def group_of_payment(self, source_id: int) -> str | None:
        """The register group shop row *source_id*'s receipts were routed to (None if unknown)."""
        with self.read() as conn:
            return conn.execute(select(receipts.c.register_group)
                                .select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id))
                                .where(payments.c.source_id == source_id).order_by(receipts.c.id).limit(1)).scalar()

    def add_planned(self, source_id: int, planned: Sequence[PlannedRow], *,
                    payment: ShopPayment | None = None) -> int:
        """Add receipts (corrections) to shop row *source_id*, ingesting *payment* first if it is not in the
        ledger. One transaction; (payment, stage, part) and tag stay unique. Returns receipts added."""
        now = utcnow()
        with self.write() as conn:
            pid = conn.execute(select(payments.c.id).where(payments.c.source_id == source_id)).scalar()
            if pid is None:
                if payment is None:
                    raise ValueError(f"payment {source_id} is not in the ledger")
                self._insert_entries(conn, [IngestEntry(payment, tuple(planned))], now)
            else:
                self._insert_planned(conn, pid, self._inherit_group(conn, pid, planned), now, source_id=source_id)
        return len(planned)

    def orphan_refunds(self, sale_ids: Sequence[int]) -> list[int]:
        """Shop ids of refunds that were rejected while waiting for one of *sale_ids* (the sale was not in
        the ledger when they were planned); a replan builds them now."""
        with self.read() as conn:
            return sorted(set(conn.execute(_ORPHAN_REFUNDS, {"b_ids": list(sale_ids)}).scalars()))

    def known_source_ids(self, lo: int, hi: int) -> set[int]:
        """Shop ids in [lo, hi] already in the ledger (backfill skips them)."""
        with self.read() as conn:
            return set(conn.execute(select(payments.c.source_id).where(
                payments.c.source_id >= lo, payments.c.source_id <= hi)).scalars())


    def snapshots_between(self, lo: int, hi: int) -> dict[int, str]:
        """Stored snapshots (JSON text) of shop ids in [lo, hi], for the sweep's drift check."""
        with self.read() as conn:
            return dict(conn.execute(select(payments.c.source_id, payments.c.snapshot).where(
                payments.c.source_id >= lo, payments.c.source_id <= hi)).all())

    def record_drift(self, source_id: int, drift: str) -> bool:
        """Note that shop row *source_id* differs from its ingested snapshot. True if this is news."""
        with self.write() as conn:
            res = conn.execute(update(payments).where(
                payments.c.source_id == source_id,
                (payments.c.drift.is_(None)) | (payments.c.drift != drift[:2000])).values(drift=drift[:2000]))
            return res.rowcount == 1

    def mark_swept(self, source: str, ids: Sequence[int]) -> None:
        """Ids the sweep found after their gap expired are no longer expired gaps (kept for forensics)."""
        if not ids:
            return
        with self.write() as conn:
            conn.execute(update(gap_log).where(gap_log.c.source == source, gap_log.c.id.in_(list(ids)),
                                               gap_log.c.reason == "expired").values(reason="swept in late"))

def _plan_values(p: PlannedRow, source_id: int, refund_of: Any) -> dict[str, Any]:
    """The columns a planned receipt sets: its body (or the rejection) and what it waits for."""
    waits = prerequisite(p.stage, p.part, source_id, refund_of=refund_of, receipt=p.receipt)
    return dict(
        body=receipt_json.dumps(p.receipt) if p.receipt else None,
        lines=json.dumps(list(p.lines)) if p.lines is not None else None,
        operation=int(p.receipt.operation) if p.receipt else None,
        total=p.receipt.total if p.receipt else None,
        error_class=None if p.receipt else "rejected", last_error=p.error,
        waits_for_source=waits.source_id if waits else None,
        waits_for_stage=str(waits.stage) if waits and waits.stage else None,
    )


# Built once (see lane_writes): the inserts (fastpath.insert_many) return what maps each row to its new
# id; every poll runs the others (SQLAlchemy then finds the compiled form by the statement's memoized cache
# key instead of building and walking a new statement each time: most of a one-row poll's CPU)
_CURSOR_OF = select(ingest_cursor.c.last_id).where(ingest_cursor.c.source == bindparam("b_source"))
_GAPS_OF = (select(ingest_gaps.c.id, ingest_gaps.c.first_seen_at)
            .where(ingest_gaps.c.source == bindparam("b_source")).order_by(ingest_gaps.c.id))
_CURSOR_UPDATE = (update(ingest_cursor).where(ingest_cursor.c.source == bindparam("b_source"))
                  .values(last_id=bindparam("b_cursor", type_=ingest_cursor.c.last_id.type),
                          updated_at=bindparam("b_now", type_=ingest_cursor.c.updated_at.type)))
_GAPS_CHECKED = (update(ingest_gaps)
                 .where(ingest_gaps.c.source == bindparam("b_source"),
                        ingest_gaps.c.first_seen_at < bindparam("b_now", type_=ingest_gaps.c.first_seen_at.type))
                 .values(last_checked_at=bindparam("b_now", type_=ingest_gaps.c.last_checked_at.type),
                         checks=ingest_gaps.c.checks + 1))
_KNOWN_AMONG = select(payments.c.source_id).where(payments.c.source_id.in_(bindparam("b_ids", expanding=True)))
_ORPHAN_REFUNDS = (select(payments.c.source_id)
                   .select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id))
                   .where(receipts.c.waits_for_source.in_(bindparam("b_ids", expanding=True)),
                          receipts.c.state == State.REJECTED.value, receipts.c.stage == Stage.REFUND.value))
_PAYMENTS_RETURNING = (payments.c.source_id, payments.c.id)
_RECEIPTS_RETURNING = (receipts.c.tag, receipts.c.id)
_TAGS_PER_QUERY = 500   # well under every backend's bound-parameter limit
_UNCLAIMED_AMONG = select(register_documents.c.tag).where(
    register_documents.c.tag.in_(bindparam("b_tags", expanding=True)),
    register_documents.c.disposition == "unclaimed")
