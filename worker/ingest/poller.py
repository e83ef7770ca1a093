"""Stage one: copy new shop rows into the ledger, nothing skipped, nothing twice.

Each poll reads rows past the cursor and rechecks every open gap by primary key, then commits
rows + planned receipts + cursor + gaps in ONE ledger transaction. An id missing below the
cursor is a gap: a transaction that has not committed yet (it will appear later, out of id
order) or one that rolled back (it never will). A gap is given up only after its own grace
period, measured from when *that* gap was first seen (reliability-patterns.md §1.5).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from worker.defaults import GAP_MAX_SPAN, GAP_TIMEOUT_SECONDS, POLL_BATCH_SIZE
from worker.ingest.planner import DeliveryPlanner, Planner
from worker.ledger.store import Gap, IngestEntry, Ledger, utcnow
from worker.shop.rows import KIND_SALE, ShopPayment
from worker.shop.source import ShopDelivery

log = logging.getLogger(__name__)


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


class Ingestor:
    """Polls one shop table into the ledger."""

    def __init__(self, source: object, ledger: Ledger, planner: Planner, *, name: str = "payments",
                 batch_size: int = POLL_BATCH_SIZE, gap_timeout_s: float = GAP_TIMEOUT_SECONDS,
                 max_gap_span: int = GAP_MAX_SPAN, start_after_id: int = 0,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.source = source
        self.ledger = ledger
        self.planner = planner
        self.name = name
        self.batch_size = batch_size
        self.gap_timeout = dt.timedelta(seconds=gap_timeout_s)
        self.max_gap_span = max_gap_span
        self.start_after_id = start_after_id
        self.clock = clock

    def poll_once(self) -> PollResult:
        """Read past the cursor, recheck gaps, commit everything in one ledger transaction."""
        cursor, gaps = self.ledger.ingest_position(self.name)
        start = max(cursor, self.start_after_id)
        rows: list[ShopPayment] = sorted(self.source.fetch_after(start, self.batch_size), key=lambda r: r.id)
        gap_rows = self.source.fetch_by_ids([g.id for g in gaps]) if gaps else []
        now = self.clock()

        new_gaps: list[int] = []
        untracked: list[tuple[int, int]] = []
        prev = start
        for row in rows:
            if row.id > prev + 1:
                if row.id - prev - 1 <= self.max_gap_span:
                    new_gaps.extend(range(prev + 1, row.id))
                else:
                    # an AUTO_INCREMENT jump: tracking millions of ids is not useful; alert instead
                    untracked.append((prev + 1, row.id - 1))
                    log.error("ids %d..%d were skipped by the shop's AUTO_INCREMENT and are not tracked "
                              "as gaps; run `kkt-worker backfill` if any of them may still appear",
                              prev + 1, row.id - 1, extra={"source": self.name})
            prev = row.id
        found = {r.id for r in gap_rows}
        expired = [g for g in gaps if g.id not in found and now - g.first_seen_at > self.gap_timeout]
        for g in expired:
            log.warning("gap id %d expired after %s without appearing (rolled back?)",
                        g.id, now - g.first_seen_at, extra={"source": self.name, "source_id": g.id})

        added = self._apply(
            [*gap_rows, *rows], cursor=max(prev, cursor), new_gaps=new_gaps, filled=sorted(found), expired=expired,
            now=now, expected_cursor=cursor, untracked=untracked)
        if found:
            log.info("late rows appeared in gaps: %s", sorted(found), extra={"source": self.name})
        self.replan_orphan_refunds([*gap_rows, *rows])
        return PollResult(added=added, fetched=len(rows), cursor=max(prev, cursor), new_gaps=len(new_gaps),
                          filled_gaps=len(found), expired_gaps=len(expired),
                          open_gaps=len(gaps) - len(found) - len(expired) + len(new_gaps))

    def replan_orphan_refunds(self, rows: Sequence[ShopPayment]) -> int:
        """Refunds rejected only because their sale was not in the ledger yet (it committed late) are
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

    def _apply(self, rows: Sequence[ShopPayment], **position: Any) -> int:
        """Plan *rows* and commit them with the new cursor and gaps (one ledger transaction)."""
        return self.ledger.apply_ingest(self.name, entries=self.plan_all(rows), **position)

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
            if not rows:
                break
            known = self.ledger.known_source_ids(rows[0].id, rows[-1].id)
            late += [r for r in rows if r.id not in known and r.id not in open_ids]
            pos = rows[-1].id
        if not late:
            return 0
        log.error("rows %s appeared after their gap had expired; ingesting them now (gap_timeout_s too short?)",
                  [r.id for r in late], extra={"source": self.name})
        return self.ledger.add_payments(self.plan_all(late))

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


class _DeliveryFeed:
    """The deliveries table seen through the payments interface the :class:`Ingestor` polls."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def fetch_after(self, cursor: int, limit: int) -> list[ShopDelivery]:
        return self.source.fetch_deliveries_after(cursor, limit)

    def fetch_by_ids(self, ids: Sequence[int]) -> list[ShopDelivery]:
        return self.source.fetch_deliveries_by_ids(ids)


class DeliveryIngestor(Ingestor):
    """Polls the shop's ``deliveries`` (prepayment flow) with the same cursor + gap machinery.

    Its cursor and gaps are kept under the source name ``deliveries``. Each delivery becomes the
    settlement receipts of its payment (the lane holds them until the prepayment is done); a
    delivery whose payment is unknown is recorded in the gap log with the reason and logged.
    """

    def __init__(self, source: Any, ledger: Ledger, planner: DeliveryPlanner, *, name: str = "deliveries",
                 **options: Any) -> None:
        super().__init__(_DeliveryFeed(source), ledger, planner, name=name, **options)  # type: ignore[arg-type]

    def _apply(self, rows: Sequence[ShopDelivery], **position: Any) -> int:  # type: ignore[override]
        settlements, rejected = self.planner.plan_deliveries(rows)  # type: ignore[attr-defined]
        return self.ledger.apply_ingest(self.name, entries=(), settlements=settlements, rejected=rejected,
                                        **position)

    def backfill(self, from_id: int, to_id: int, **_: Any) -> int:
        raise NotImplementedError("deliveries are not backfilled; lower the deliveries cursor instead")

    def sweep(self, window: int) -> int:
        """Deliveries have no sweep: a late delivery after its gap expired needs an admin (see README)."""
        return 0


__all__ = ["DeliveryIngestor", "Gap", "Ingestor", "PollResult"]
