"""Every read and write of the ledger. State changes are compare-and-set on the expected state.

The ledger is the only place the two stages meet: ingest writes payments and planned receipts,
lanes move receipts through :mod:`worker.ledger.states`, the CLI reads it. Times are naive UTC.
"""
from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator, Sequence

from sqlalchemy import Connection, Engine, and_, func, insert, select, true, update

from kkt_drivers import receipt_json
from kkt_drivers.receipt import FiscalDocument, Receipt
from worker.errors import StateConflict
from worker.ledger.db import READ_ONLY, create_ledger_engine
from worker.ledger.schema import (
    attempts,
    gap_log,
    ingest_cursor,
    ingest_gaps,
    lanes,
    payments,
    receipts,
)
from worker.ledger.states import State, check_transition
from worker.shop.rows import ShopPayment

#: the end of the rejection message of a refund whose sale is not in the ledger yet (worker.receipts.build)
ORPHAN_REFUND_MARK = "is not in the ledger yet"


def utcnow() -> dt.datetime:
    """Naive UTC now, the ledger's time."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class PlannedRow:
    """A receipt to create for a payment: built (``receipt``) or rejected (``error``)."""

    stage: str
    part: int
    tag: str
    receipt: Receipt | None = None
    error: str | None = None
    #: for a correction: the tag and fiscal sign of the receipt it reverses or replaces
    corrects_tag: str | None = None
    corrects_fiscal_sign: int | None = None
    #: the shop's line_no of each receipt line (refunds of this receipt find their lines by it)
    lines: tuple[int, ...] | None = None
    #: the receipt was issued by another system (a sale before go-live): recorded done, never sent
    issued_elsewhere: bool = False


@dataclass(frozen=True)
class IngestEntry:
    """One shop row and the receipts planned for it."""

    payment: ShopPayment
    planned: tuple[PlannedRow, ...]


@dataclass(frozen=True)
class SettlementEntry:
    """A shop delivery and the settlement receipts planned for its payment.

    ``payment`` is set when the payment was not in the ledger yet: it is ingested in the same
    transaction (the payments poller later finds its source id and skips it).
    """

    delivery_id: int
    source_id: int
    planned: tuple[PlannedRow, ...]
    payment: IngestEntry | None = None


@dataclass(frozen=True)
class Gap:
    """An id below the cursor that has not been seen yet."""

    id: int
    first_seen_at: dt.datetime


@dataclass(frozen=True)
class ReceiptRecord:
    """A receipts row joined with its payment's source id."""

    id: int
    source_id: int
    payment_id: int
    stage: str
    part: int
    tag: str
    state: State
    register: str | None
    attempts: int
    next_attempt_at: dt.datetime
    total: Decimal | None
    body: str | None
    fn_serial: str | None
    fd_before: int | None
    fd_number: int | None
    fiscal_sign: int | None
    shift_number: int | None
    receipt_number: int | None
    fiscal_at: dt.datetime | None
    qr: str | None
    error_class: str | None
    last_error: str | None
    kind: str
    refund_of: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    lines: str | None = None

    def receipt(self) -> Receipt:
        """The built receipt (only for rows that have one)."""
        assert self.body is not None, f"receipt {self.tag} has no body"
        return receipt_json.loads(self.body)


_RECORD_COLS = (
    receipts.c.id, payments.c.source_id, receipts.c.payment_id, receipts.c.stage, receipts.c.part,
    receipts.c.tag, receipts.c.state, receipts.c.register, receipts.c.attempts, receipts.c.next_attempt_at,
    receipts.c.total, receipts.c.body, receipts.c.fn_serial, receipts.c.fd_before, receipts.c.fd_number,
    receipts.c.fiscal_sign, receipts.c.shift_number, receipts.c.receipt_number, receipts.c.fiscal_at,
    receipts.c.qr, receipts.c.error_class, receipts.c.last_error, payments.c.kind, payments.c.refund_of,
    receipts.c.created_at, receipts.c.updated_at, receipts.c.lines,
)


def _record(row: Any) -> ReceiptRecord:
    m = dict(row._mapping)
    m["state"] = State(m["state"])
    return ReceiptRecord(**m)


class Ledger:
    """The ledger at one database URL."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or create_ledger_engine(url)

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite); committed on a clean exit."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction."""
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    def _select_records(self) -> Any:
        return select(*_RECORD_COLS).select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id))

    @staticmethod
    def _cas(conn: Connection, receipt_id: int, expected: State, new: State, **values: Any) -> None:
        check_transition(expected, new)
        res = conn.execute(
            update(receipts)
            .where(receipts.c.id == receipt_id, receipts.c.state == expected.value)
            .values(state=new.value, updated_at=utcnow(), **values)
        )
        if res.rowcount != 1:
            raise StateConflict(f"receipt {receipt_id}: expected state {expected.value}, it moved")

    # -- ingest -----------------------------------------------------------------------------
    def ingest_position(self, source: str) -> tuple[int, list[Gap]]:
        """The cursor and the open gaps of *source*."""
        with self.read() as conn:
            cursor = conn.execute(select(ingest_cursor.c.last_id).where(ingest_cursor.c.source == source)).scalar()
            gaps = [Gap(r.id, r.first_seen_at) for r in conn.execute(
                select(ingest_gaps.c.id, ingest_gaps.c.first_seen_at)
                .where(ingest_gaps.c.source == source).order_by(ingest_gaps.c.id))]
        return int(cursor or 0), gaps

    def apply_ingest(self, source: str, *, cursor: int, new_gaps: Sequence[int], filled: Sequence[int],
                     expired: Sequence[Gap], entries: Sequence[IngestEntry], now: dt.datetime,
                     expected_cursor: int, untracked: Sequence[tuple[int, int]] = (),
                     settlements: Sequence[SettlementEntry] = (),
                     rejected: Sequence[tuple[int, str]] = ()) -> int:
        """Record one poll in ONE transaction: rows, receipts, cursor, gaps. Returns rows added.

        ``expected_cursor`` guards against two ingesters racing: the cursor must not have moved.
        """
        with self.write() as conn:
            current = conn.execute(select(ingest_cursor.c.last_id).where(ingest_cursor.c.source == source)).scalar()
            if int(current or 0) != expected_cursor:
                raise StateConflict(f"ingest cursor of {source} moved from {expected_cursor} to {current}")
            added = self._insert_entries(conn, entries, now)
            added += self._insert_settlements(conn, settlements, now)
            logged = set(conn.execute(select(gap_log.c.id).where(
                gap_log.c.source == source, gap_log.c.id.in_([i for i, _ in rejected]))).scalars()) if rejected else set()
            for row_id, reason in rejected:
                if row_id not in logged:  # rows that cannot become receipts at all, with the reason
                    conn.execute(insert(gap_log).values(source=source, id=row_id, first_seen_at=now, expired_at=now,
                                                        reason=reason[:64]))
            if current is None:
                conn.execute(insert(ingest_cursor).values(source=source, last_id=cursor, updated_at=now))
            else:
                conn.execute(update(ingest_cursor).where(ingest_cursor.c.source == source)
                             .values(last_id=cursor, updated_at=now))
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
            conn.execute(update(ingest_gaps).where(ingest_gaps.c.source == source, ingest_gaps.c.first_seen_at < now)
                         .values(last_checked_at=now, checks=ingest_gaps.c.checks + 1))
        return added

    def add_payments(self, entries: Sequence[IngestEntry]) -> int:
        """Insert payments outside the polling cursor (backfill); existing source ids are left alone."""
        with self.write() as conn:
            return self._insert_entries(conn, entries, utcnow())

    def _insert_entries(self, conn: Connection, entries: Sequence[IngestEntry], now: dt.datetime) -> int:
        if not entries:
            return 0
        ids = [e.payment.id for e in entries]
        existing = set(conn.execute(select(payments.c.source_id).where(payments.c.source_id.in_(ids))).scalars())
        added = 0
        for e in entries:
            if e.payment.id in existing:
                continue  # idempotent by source id: a re-read row changes nothing
            existing.add(e.payment.id)
            pid = conn.execute(insert(payments).values(
                source_id=e.payment.id, kind=str(e.payment.kind)[:16], amount=_decimal_or_none(e.payment.amount),
                paid_at=_naive_utc(e.payment.paid_at),
                refund_of=e.payment.refund_of if isinstance(e.payment.refund_of, int) else None,
                snapshot=json.dumps(e.payment.to_json(), ensure_ascii=False), ingested_at=now,
            )).inserted_primary_key[0]
            self._insert_planned(conn, pid, e.planned, now)
            added += 1
        return added

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
            self._insert_planned(conn, pid, fresh, now)
            added += 1
        return added

    @staticmethod
    def _insert_planned(conn: Connection, payment_id: int, planned: Sequence[PlannedRow], now: dt.datetime) -> None:
        for p in planned:
            state = State.DONE if p.issued_elsewhere else State.QUEUED if p.receipt else State.REJECTED
            conn.execute(insert(receipts).values(
                corrects_tag=p.corrects_tag, corrects_fiscal_sign=p.corrects_fiscal_sign,
                lines=json.dumps(list(p.lines)) if p.lines is not None else None,
                payment_id=payment_id, stage=p.stage, part=p.part, tag=p.tag,
                state=state.value,
                operation=int(p.receipt.operation) if p.receipt else None,
                total=p.receipt.total if p.receipt else None,
                body=receipt_json.dumps(p.receipt) if p.receipt else None,
                attempts=0, next_attempt_at=now, error_class=None if p.receipt else "rejected",
                last_error=p.error, created_at=now, updated_at=now,
            ))

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
            return [_record(r) for r in conn.execute(q.order_by(payments.c.source_id, receipts.c.part))]

    def replan(self, source_id: int, payment: ShopPayment, planned: Sequence[PlannedRow]) -> int:
        """Replace the not-done receipts of a payment with a fresh plan (admin resend). Returns queued count.

        Done receipts are never touched; a planned receipt whose (stage, part) is done is skipped.
        """
        now = utcnow()
        queued = 0
        with self.write() as conn:
            pid = conn.execute(select(payments.c.id).where(payments.c.source_id == source_id)).scalar_one()
            conn.execute(update(payments).where(payments.c.id == pid).values(
                snapshot=json.dumps(payment.to_json(), ensure_ascii=False), refetched_at=now,
                amount=_decimal_or_none(payment.amount)))
            current = {(r.stage, r.part): r for r in conn.execute(
                select(receipts.c.id, receipts.c.stage, receipts.c.part, receipts.c.state)
                .where(receipts.c.payment_id == pid))}
            wanted = {(p.stage, p.part) for p in planned}
            for key, r in current.items():
                if r.state in (State.REJECTED.value, State.FAILED.value, State.NEEDS_REVIEW.value) and key not in wanted:
                    # a part that the new plan no longer has: its row is dropped (it was never fiscalized)
                    conn.execute(attempts.delete().where(attempts.c.receipt_id == r.id))
                    conn.execute(receipts.delete().where(receipts.c.id == r.id))
            for p in planned:
                r = current.get((p.stage, p.part))
                if r is None:
                    self._insert_planned(conn, pid, [p], now)
                    queued += p.receipt is not None
                elif r.state in (State.REJECTED.value, State.FAILED.value, State.NEEDS_REVIEW.value):
                    new = State.QUEUED if p.receipt else State.REJECTED
                    conn.execute(update(receipts).where(receipts.c.id == r.id, receipts.c.state == r.state).values(
                        state=new.value, tag=p.tag, body=receipt_json.dumps(p.receipt) if p.receipt else None,
                        lines=json.dumps(list(p.lines)) if p.lines is not None else None,
                        operation=int(p.receipt.operation) if p.receipt else None,
                        total=p.receipt.total if p.receipt else None, attempts=0, next_attempt_at=now,
                        error_class=None if p.receipt else "rejected", last_error=p.error, register=None,
                        updated_at=now))
                    queued += p.receipt is not None
        return queued

    # -- lanes: claiming and state changes -------------------------------------------------
    def due(self, now: dt.datetime, limit: int = 10) -> list[ReceiptRecord]:
        """Queued receipts whose time has come, oldest first."""
        with self.read() as conn:
            rows = conn.execute(self._select_records().where(
                receipts.c.state == State.QUEUED.value, receipts.c.next_attempt_at <= now)
                .order_by(receipts.c.next_attempt_at, receipts.c.id).limit(limit))
            return [_record(r) for r in rows]

    def orphan_refunds(self, sale_ids: Sequence[int]) -> list[int]:
        """Shop ids of refunds of *sale_ids* rejected because the sale was unknown when they arrived."""
        with self.read() as conn:
            return sorted(set(conn.execute(
                select(payments.c.source_id).select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id))
                .where(payments.c.refund_of.in_(list(sale_ids)), receipts.c.state == State.REJECTED.value,
                       receipts.c.last_error.like(f"%{ORPHAN_REFUND_MARK}%"))).scalars()))

    def postpone(self, receipt_id: int, until: dt.datetime) -> None:
        """Move a queued receipt's next attempt to *until* (it waits for another receipt first)."""
        with self.write() as conn:
            conn.execute(update(receipts).where(receipts.c.id == receipt_id, receipts.c.state == State.QUEUED.value)
                         .values(next_attempt_at=until))

    def sending(self, register: str | None = None) -> list[ReceiptRecord]:
        """Receipts whose outcome is not known (left "sending"), optionally for one register."""
        q = self._select_records().where(receipts.c.state == State.SENDING.value)
        if register is not None:
            q = q.where(receipts.c.register == register)
        with self.read() as conn:
            return [_record(r) for r in conn.execute(q.order_by(receipts.c.id))]

    def get(self, receipt_id: int) -> ReceiptRecord:
        """One receipt by ledger id."""
        with self.read() as conn:
            return _record(conn.execute(self._select_records().where(receipts.c.id == receipt_id)).one())

    def sale_done(self, source_id: int) -> bool:
        """Whether every receipt of shop row *source_id* is done (refunds wait for their sale)."""
        return self.stage_done(source_id, None)

    def stage_done(self, source_id: int, stage: str | None, *, below_part: int | None = None) -> bool:
        """Whether shop row *source_id* has receipts of *stage* (any stage for None; parts below
        *below_part*) and all are done.

        Settlements wait for their prepayment, refunds of a prepayment for it, corrections for the
        corrections before them.
        """
        q = (select(receipts.c.state).select_from(receipts.join(payments, receipts.c.payment_id == payments.c.id))
             .where(payments.c.source_id == source_id))
        if stage is not None:
            q = q.where(receipts.c.stage == stage)
        if below_part is not None:
            q = q.where(receipts.c.part < below_part)
        with self.read() as conn:
            states = list(conn.execute(q).scalars())
        return bool(states) and all(s == State.DONE.value for s in states)

    def receipts_of(self, source_id: int) -> list[ReceiptRecord]:
        """Every receipt of shop row *source_id*, by stage and part."""
        return self.list_receipts(source_ids=[source_id])

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
                self._insert_planned(conn, pid, planned, now)
        return len(planned)

    def corrections_link(self, receipt_id: int) -> tuple[str | None, int | None]:
        """(tag, fiscal sign) of the receipt a correction receipt reverses or replaces."""
        with self.read() as conn:
            row = conn.execute(select(receipts.c.corrects_tag, receipts.c.corrects_fiscal_sign)
                               .where(receipts.c.id == receipt_id)).one()
        return row[0], row[1]

    def record_intent(self, receipt_id: int, *, register: str, fn_serial: str, fd_before: int) -> int:
        """queued → sending with the register's position; committed durably BEFORE the register call.

        Returns the attempt id. StateConflict if the receipt is no longer queued.
        """
        now = utcnow()
        with self.write() as conn:
            self._cas(conn, receipt_id, State.QUEUED, State.SENDING, register=register, fn_serial=fn_serial,
                      fd_before=fd_before, intent_at=now)
            return conn.execute(insert(attempts).values(
                receipt_id=receipt_id, register=register, action="send", started_at=now, fd_before=fd_before,
            )).inserted_primary_key[0]

    def record_done(self, receipt_id: int, doc: FiscalDocument, *, attempt_id: int | None,
                    expected: State = State.SENDING, outcome: str = "done") -> None:
        """sending → done with the document's requisites."""
        now = utcnow()
        with self.write() as conn:
            self._cas(conn, receipt_id, expected, State.DONE, fd_number=doc.fd_number, fiscal_sign=doc.fiscal_sign,
                      fn_serial=doc.fn_serial, shift_number=doc.shift_number, receipt_number=doc.receipt_number,
                      fiscal_at=doc.issued_at, qr=doc.qr, error_class=None)
            self._finish_attempt(conn, attempt_id, now, outcome, fd_number=doc.fd_number)

    def record_retry(self, receipt_id: int, *, attempt_id: int | None, error: str, error_class: str,
                     next_attempt_at: dt.datetime, burn_attempt: bool, max_attempts: int,
                     outcome: str | None = None) -> State:
        """sending → queued (or failed when the attempts are exhausted). Returns the new state."""
        now = utcnow()
        with self.write() as conn:
            used = conn.execute(select(receipts.c.attempts).where(receipts.c.id == receipt_id)).scalar_one()
            used += 1 if burn_attempt else 0
            new = State.FAILED if used >= max_attempts else State.QUEUED
            self._cas(conn, receipt_id, State.SENDING, new, attempts=used, next_attempt_at=next_attempt_at,
                      error_class=error_class, last_error=error[:2000])
            self._finish_attempt(conn, attempt_id, now, outcome or error_class, error=error)
        return new

    def record_final(self, receipt_id: int, new: State, *, attempt_id: int | None, error: str, error_class: str,
                     expected: State = State.SENDING) -> None:
        """sending → rejected / needs_review / failed with the reason."""
        now = utcnow()
        with self.write() as conn:
            self._cas(conn, receipt_id, expected, new, error_class=error_class, last_error=error[:2000])
            self._finish_attempt(conn, attempt_id, now, new.value, error=error)

    def open_attempt(self, receipt_id: int, *, register: str, action: str, fd_before: int | None) -> int:
        """Start an attempts row (reconciliation); finished by the record_* call that follows."""
        with self.write() as conn:
            return conn.execute(insert(attempts).values(
                receipt_id=receipt_id, register=register, action=action, started_at=utcnow(),
                fd_before=fd_before)).inserted_primary_key[0]

    @staticmethod
    def _finish_attempt(conn: Connection, attempt_id: int | None, now: dt.datetime, outcome: str, *,
                        error: str | None = None, fd_number: int | None = None) -> None:
        if attempt_id is None:
            return
        conn.execute(update(attempts).where(attempts.c.id == attempt_id).values(
            finished_at=now, outcome=outcome[:24], error=error[:2000] if error else None, fd_number=fd_number))

    # -- lanes table --------------------------------------------------------------------------
    def lane_heartbeat(self, name: str, *, state: str, reason: str | None = None, fn_serial: str | None = None,
                       last_fd: int | None = None, shift_open: bool | None = None) -> None:
        """Upsert what a lane last saw (for ``status``)."""
        now = utcnow()
        values: dict[str, Any] = dict(state=state, reason=reason, heartbeat_at=now)
        # what the register showed is kept until a newer reading replaces it
        seen = dict(fn_serial=fn_serial, last_fd=last_fd, shift_open=None if shift_open is None else int(shift_open))
        values.update({k: v for k, v in seen.items() if v is not None})
        with self.write() as conn:
            if conn.execute(update(lanes).where(lanes.c.name == name).values(**values)).rowcount == 0:
                conn.execute(insert(lanes).values(name=name, **values))

    # -- admin and accountant ---------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Receipts by state."""
        with self.read() as conn:
            return {s: n for s, n in conn.execute(select(receipts.c.state, func.count()).group_by(receipts.c.state))}

    def status_details(self) -> dict[str, Any]:
        """Cursor, gaps, expired gaps and lanes for ``status``."""
        with self.read() as conn:
            return {
                "cursors": [dict(r._mapping) for r in conn.execute(select(ingest_cursor))],
                "open_gaps": [dict(r._mapping) for r in conn.execute(select(ingest_gaps).order_by(ingest_gaps.c.id))],
                "expired_gaps": [dict(r._mapping) for r in conn.execute(select(gap_log).order_by(gap_log.c.id))],
                "lanes": [dict(r._mapping) for r in conn.execute(select(lanes).order_by(lanes.c.name))],
            }

    def list_receipts(self, *, states: Sequence[str] = (), since: dt.datetime | None = None,
                      until: dt.datetime | None = None, source_ids: Sequence[int] = (),
                      limit: int | None = None) -> list[ReceiptRecord]:
        """Receipts filtered by state, creation date range (UTC) and shop ids, in shop-id order."""
        conds = []
        if states:
            conds.append(receipts.c.state.in_(list(states)))
        if since:
            conds.append(receipts.c.created_at >= since)
        if until:
            conds.append(receipts.c.created_at < until)
        if source_ids:
            conds.append(payments.c.source_id.in_(list(source_ids)))
        q = self._select_records().where(and_(true(), *conds)).order_by(payments.c.source_id, receipts.c.stage, receipts.c.part)
        if limit:
            q = q.limit(limit)
        with self.read() as conn:
            return [_record(r) for r in conn.execute(q)]

    def attempts_of(self, receipt_id: int) -> list[dict[str, Any]]:
        """The history of one receipt's register calls."""
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(attempts).where(attempts.c.receipt_id == receipt_id).order_by(attempts.c.id))]

    def known_source_ids(self, lo: int, hi: int) -> set[int]:
        """Shop ids in [lo, hi] already in the ledger (backfill skips them)."""
        with self.read() as conn:
            return set(conn.execute(select(payments.c.source_id).where(
                payments.c.source_id >= lo, payments.c.source_id <= hi)).scalars())

    def force_state(self, receipt_id: int, expected: State, new: State, note: str) -> None:
        """An admin's explicit transition (e.g. needs_review → queued after checking the register)."""
        with self.write() as conn:
            self._cas(conn, receipt_id, expected, new, last_error=note, attempts=0, next_attempt_at=utcnow(),
                      register=None)


def _naive_utc(value: Any) -> dt.datetime | None:
    """A shop time for the ledger's naive-UTC columns (aware values are converted; naive kept)."""
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _decimal_or_none(value: Any) -> Decimal | None:
    if isinstance(value, Decimal) and value.is_finite() and abs(value) < Decimal("1e12"):
        return value
    return None
