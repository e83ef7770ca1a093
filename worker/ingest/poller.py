"""Stage one: copy new shop rows into the ledger, nothing skipped, nothing twice.

Each poll reads rows past the cursor and rechecks every open gap by primary key, then commits
rows + planned receipts + cursor + gaps in ONE ledger transaction. The cursor and gap arithmetic
is :mod:`worker.ingest.gaps`; reading a table through it is :class:`TablePoll`, which both pollers
*use* (payments: :class:`Ingestor`, deliveries: :class:`DeliveryIngestor`); they differ only in
what a row becomes.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

from worker.defaults import GAP_MAX_SPAN, GAP_TIMEOUT_SECONDS, POLL_BATCH_SIZE
from worker.ingest.gaps import Advance, advance
from worker.ingest.planner import DeliveryPlanner, Planner
from worker.ledger.store import Fence, Gap, IngestEntry, Ledger, utcnow
from worker.shop.rows import KIND_SALE, ShopPayment
from worker.shop.source import ShopDelivery

log = logging.getLogger(__name__)

Row = TypeVar("Row", ShopPayment, ShopDelivery)


@dataclass(frozen=True)
class PollResult:
    """What one poll did."""

    added: int
    fetched: int
    cursor: int
    new_gaps: int
    filled_gaps: int
    expired_gaps: int
    open_gaps: int


class TablePoll(Generic[Row]):
    """One shop table read past its cursor, its open gaps rechecked: the part both pollers share."""

    def __init__(self, name: str, ledger: Ledger, fetch_after: Callable[[int, int], Sequence[Row]],
                 fetch_by_ids: Callable[[Sequence[int]], Sequence[Row]], *, batch_size: int,
                 gap_timeout_s: float, max_gap_span: int, start_after_id: int,
                 clock: Callable[[], dt.datetime]) -> None:
        self.name = name
        self.ledger = ledger
        self.fetch_after = fetch_after
        self.fetch_by_ids = fetch_by_ids
        self.batch_size = batch_size
        self.gap_timeout = dt.timedelta(seconds=gap_timeout_s)
        self.max_gap_span = max_gap_span
        self.start_after_id = start_after_id
        self.clock = clock

    def read(self) -> tuple[list[Row], list[Row], Advance, dt.datetime]:
        """(new rows, rows that appeared in gaps, the cursor/gap advance, the poll's time)."""
        cursor, gaps = self.ledger.ingest_position(self.name)
        start = max(cursor, self.start_after_id)
        rows = sorted(self.fetch_after(start, self.batch_size), key=lambda r: r.id)
        gap_rows = list(self.fetch_by_ids([g.id for g in gaps])) if gaps else []
        now = self.clock()
        step = advance(cursor=cursor, start=start, row_ids=[r.id for r in rows], gaps=gaps,
                       found=[r.id for r in gap_rows], now=now, gap_timeout=self.gap_timeout,
                       max_gap_span=self.max_gap_span)
        self._log(step, now, gaps)
        return rows, gap_rows, step, now

    def _log(self, step: Advance, now: dt.datetime, gaps: Sequence[Gap]) -> None:
        extra = {"source": self.name}
        for lo, hi in step.untracked:
            # an AUTO_INCREMENT jump: tracking millions of ids is not useful; alert instead
            log.error("ids %d..%d were skipped by the shop's AUTO_INCREMENT and are not tracked "
                      "as gaps; run `kkt-worker backfill` if any of them may still appear", lo, hi, extra=extra)
        for g in step.expired:
            log.warning("gap id %d expired after %s without appearing (rolled back?)",
                        g.id, now - g.first_seen_at, extra={**extra, "source_id": g.id})
        if step.filled:
            log.info("late rows appeared in gaps: %s", step.filled, extra=extra)

    @staticmethod
    def result(added: int, rows: Sequence[Any], step: Advance) -> PollResult:
        """The poll's summary."""
        return PollResult(added=added, fetched=len(rows), cursor=step.cursor, new_gaps=len(step.new_gaps),
                          filled_gaps=len(step.filled), expired_gaps=len(step.expired), open_gaps=step.open_gaps)


class Ingestor:
    """Polls the shop's payments into the ledger (and backfills, and sweeps behind the cursor)."""

    def __init__(self, source: Any, ledger: Ledger, planner: Planner, *, name: str = "payments",
                 batch_size: int = POLL_BATCH_SIZE, gap_timeout_s: float = GAP_TIMEOUT_SECONDS,
                 max_gap_span: int = GAP_MAX_SPAN, start_after_id: int = 0,
                 clock: Callable[[], dt.datetime] = utcnow, fence: Callable[[], Fence | None] = lambda: None) -> None:
        self.source = source
        self.ledger = ledger
        #: the ingest lease every write is checked against (cluster mode); None: one worker, no lease
        self.fence = fence
        self.planner = planner
        self.name = name
        self.batch_size = batch_size
        self.start_after_id = start_after_id
        self.table: TablePoll[ShopPayment] = TablePoll(
            name, ledger, source.fetch_after, source.fetch_by_ids, batch_size=batch_size,
            gap_timeout_s=gap_timeout_s, max_gap_span=max_gap_span, start_after_id=start_after_id, clock=clock)

    def poll_once(self) -> PollResult:
        """Read past the cursor, recheck gaps, commit everything in one ledger transaction."""
        rows, gap_rows, step, now = self.table.read()
        fresh = [*gap_rows, *rows]
        added = self.ledger.apply_ingest(self.name, entries=self.plan_all(fresh), fence=self.fence(),
                                         **step.position(now))
        self.replan_orphan_refunds(fresh)
        return self.table.result(added, rows, step)

    def replan_orphan_refunds(self, rows: Sequence[ShopPayment]) -> int:
        """Refunds rejected while waiting for a sale that was not in the ledger yet (it committed late) are
        built again once that sale arrives. Returns how many were requeued."""
        sale_ids = [r.id for r in rows if getattr(r, "kind", None) == KIND_SALE]
        requeued = 0
        for source_id in self.ledger.orphan_refunds(sale_ids) if sale_ids else ():
            payment = self.ledger.payment_snapshot(source_id)
            if payment is not None:
                requeued += self.ledger.replan(source_id, payment, self.planner.plan(payment))
                log.info("refund rebuilt now that its sale %s is here", payment.refund_of,
                         extra={"source": self.name, "source_id": source_id})
        return requeued

    def plan_all(self, rows: Sequence[ShopPayment]) -> list[IngestEntry]:
        """Plan receipts for *rows*, letting refunds see sales and refunds of the same batch."""
        batch = self.planner.new_batch()
        return [IngestEntry(row, self.planner.plan(row, batch)) for row in rows]

    def sweep(self, window: int) -> int:
        """Anti-entropy: re-read the last *window* ids below the cursor and ingest rows the ledger lacks.

        Such a row committed after its gap expired (a transaction open longer than the grace period)
        or reused an id; the normal poll never looks back that far. Open gaps are left to the poll.
        Returns the rows added (each one is logged as an error: tune ``source.gap_timeout_s``).
        """
        cursor, gaps = self.ledger.ingest_position(self.name)
        open_ids = {g.id for g in gaps}
        late: list[ShopPayment] = []
        pos = max(self.start_after_id, cursor - window)
        while pos < cursor:
            rows = [r for r in self.source.fetch_after(pos, self.batch_size) if r.id <= cursor]
            hi = rows[-1].id if rows else cursor
            known = self.ledger.snapshots_between(pos + 1, hi)
            late += [r for r in rows if r.id not in known and r.id not in open_ids]
            self._check_drift(rows, known)
            if not rows:
                break
            pos = rows[-1].id
        if not late:
            return 0
        log.error("rows %s appeared after their gap had expired; ingesting them now (gap_timeout_s too short?)",
                  [r.id for r in late], extra={"source": self.name})
        added = self.ledger.add_payments(self.plan_all(late), fence=self.fence())
        self.ledger.mark_swept(self.name, [r.id for r in late])
        # receipts that waited for these rows (a refund rejected because its sale was not here) are rebuilt
        self.replan_orphan_refunds(late)
        return added

    def _check_drift(self, rows: Sequence[ShopPayment], known: dict[int, str]) -> None:
        """Log (once) and record shop rows that changed or vanished after ingest; the receipt stays as printed."""
        seen = {r.id: r for r in rows}
        for source_id, snapshot in known.items():
            row = seen.get(source_id)
            if row is None:
                drift = "deleted in the shop after ingest"
            elif row.to_json() != json.loads(snapshot):
                now, then = row.to_json(), json.loads(snapshot)
                fields = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
                drift = f"changed in the shop after ingest: {', '.join(fields)}"
            else:
                continue
            if self.ledger.record_drift(source_id, drift):
                log.warning("shop row %d %s; the receipt stays what was ingested", source_id, drift,
                            extra={"source": self.name, "source_id": source_id})

    def backfill(self, from_id: int, to_id: int, *, chunk: int = POLL_BATCH_SIZE,
                 progress: Callable[[int], None] | None = None) -> int:
        """Ingest shop ids in [from_id, to_id] that the ledger does not have. Returns rows added.

        Ids already in the ledger are skipped (a done payment is never fiscalized again).
        """
        added = 0
        cursor = from_id - 1
        while cursor < to_id:
            rows = [r for r in self.source.fetch_after(cursor, chunk) if r.id <= to_id]
            if not rows:
                break
            known = self.ledger.known_source_ids(rows[0].id, rows[-1].id)
            fresh = [r for r in rows if r.id not in known]
            added += self.ledger.add_payments(self.plan_all(fresh))
            if progress:
                progress(rows[-1].id - cursor)
            cursor = rows[-1].id
            if len(rows) < chunk:
                break
        return added


class DeliveryIngestor:
    """Polls the shop's ``deliveries`` (prepayment flow) with the same cursor + gap machinery.

    Its cursor and gaps are kept under the source name ``deliveries``. Each delivery becomes the
    settlement receipts of its payment (the due query holds them until the prepayment is done); a
    delivery whose payment is unknown is recorded in the gap log with the reason and logged.
    Deliveries are neither backfilled nor swept: a late delivery after its gap expired needs an
    admin to lower the deliveries cursor (see README).
    """

    def __init__(self, source: Any, ledger: Ledger, planner: DeliveryPlanner, *, name: str = "deliveries",
                 batch_size: int = POLL_BATCH_SIZE, gap_timeout_s: float = GAP_TIMEOUT_SECONDS,
                 max_gap_span: int = GAP_MAX_SPAN, start_after_id: int = 0,
                 clock: Callable[[], dt.datetime] = utcnow, fence: Callable[[], Fence | None] = lambda: None) -> None:
        self.ledger = ledger
        self.planner = planner
        self.fence = fence
        self.name = name
        self.batch_size = batch_size
        self.table: TablePoll[ShopDelivery] = TablePoll(
            name, ledger, source.fetch_deliveries_after, source.fetch_deliveries_by_ids, batch_size=batch_size,
            gap_timeout_s=gap_timeout_s, max_gap_span=max_gap_span, start_after_id=start_after_id, clock=clock)

    def poll_once(self) -> PollResult:
        """Read deliveries past the cursor, recheck gaps, commit settlements + position in one transaction."""
        rows, gap_rows, step, now = self.table.read()
        settlements, rejected = self.planner.plan_deliveries([*gap_rows, *rows])
        added = self.ledger.apply_ingest(self.name, entries=(), settlements=settlements, rejected=rejected,
                                         fence=self.fence(), **step.position(now))
        return self.table.result(added, rows, step)


__all__ = ["DeliveryIngestor", "Gap", "Ingestor", "PollResult", "TablePoll"]
