"""Turn a shop row into the receipts the ledger will track — or one rejected row naming the field."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Sequence

from kkt_drivers.receipt import Vat
from worker.ledger.states import State
from worker.ledger.store import IngestEntry, Ledger, PlannedRow, SettlementEntry
from worker.receipts.build import (
    InvalidPayment,
    PlannedReceipt,
    ReceiptConfig,
    build_receipts,
    build_settlement,
    make_tag,
)
from worker.receipts.config import FLOW_PREPAYMENT
from worker.receipts.rules import VAT22_FROM
from worker.shop.rows import KIND_REFUND, ShopPayment
from worker.shop.source import ShopDelivery

log = logging.getLogger(__name__)


def as_rows(planned: Sequence[PlannedReceipt]) -> tuple[PlannedRow, ...]:
    """Built receipts as the rows the ledger stores."""
    return tuple(PlannedRow(p.stage, p.part, p.receipt.tag, receipt=p.receipt) for p in planned)


def build_or_reject(build: Callable[[], Sequence[PlannedReceipt]], *, stage: str, tag: str, what: str,
                    source_id: int) -> tuple[PlannedRow, ...]:
    """Run *build*; what it cannot build becomes one rejected row naming the field.

    A bug in a builder must not stop ingest either: it is logged with its traceback and the row is
    rejected with the error, waiting for a fix and a resend.
    """
    try:
        return as_rows(build())
    except InvalidPayment as exc:
        log.warning("%s rejected: %s", what, exc, extra={"source_id": source_id})
        return (PlannedRow(stage, 1, tag, error=str(exc)),)
    except Exception as exc:
        log.exception("could not build the %s (bug)", what, extra={"source_id": source_id})
        return (PlannedRow(stage, 1, tag, error=f"internal error while building the {what}: "
                                                f"{type(exc).__name__}: {exc}"),)


@dataclass
class Batch:
    """Rows planned earlier in the same poll, not yet in the ledger."""

    payments: dict[int, ShopPayment] = field(default_factory=dict)
    refunded: dict[int, dict[Any, Decimal]] = field(default_factory=dict)


class Planner:
    """Builds receipts with :func:`worker.receipts.build.build_receipts`, looking up refunded originals."""

    def __init__(self, ledger: Ledger, config: ReceiptConfig) -> None:
        self.ledger = ledger
        self.config = config

    @staticmethod
    def new_batch() -> Batch:
        """State shared by the rows of one poll."""
        return Batch()

    def plan(self, payment: ShopPayment, batch: Batch | None = None) -> tuple[PlannedRow, ...]:
        """The receipts for *payment*; a row that cannot become a correct receipt is one rejected row."""
        batch = batch if batch is not None else Batch()
        stage = "refund" if payment.kind == KIND_REFUND else "sale"

        def build() -> Sequence[PlannedReceipt]:
            original, already, refund_stage, settled_on = None, None, None, None
            if payment.kind == KIND_REFUND and isinstance(payment.refund_of, int):
                original = batch.payments.get(payment.refund_of) or self.ledger.payment_snapshot(payment.refund_of)
                already = self.ledger.refunded_quantities(payment.refund_of, excluding=payment.id)
                for line, qty in batch.refunded.get(payment.refund_of, {}).items():
                    already[line] = already.get(line, Decimal(0)) + qty
                refund_stage, settled_on = self.refunded_stage(payment.refund_of, batch)
            return build_receipts(payment, self.config, original=original, already_refunded=already,
                                  refund_stage=refund_stage, settled_on=settled_on)

        rows = build_or_reject(build, stage=stage, tag=make_tag(payment.id, stage, 1), what="receipt",
                               source_id=payment.id)
        if any(r.receipt is None for r in rows):
            return rows
        batch.payments[payment.id] = payment
        if payment.kind == KIND_REFUND and isinstance(payment.refund_of, int):
            per_line = batch.refunded.setdefault(payment.refund_of, {})
            for item in payment.items:
                per_line[item.line_no] = per_line.get(item.line_no, Decimal(0)) + Decimal(item.quantity)
        return rows

    def refunded_stage(self, sale_id: int, batch: Batch) -> tuple[str | None, dt.date | None]:
        """Which stage a refund of *sale_id* mirrors (prepayment flow), decided when the refund is planned.

        Not delivered yet (no settlement receipt, or only a rejected one) → the prepayment; delivered →
        the settlement, at the rate family its receipt used. A sale fiscalized as one full payment
        (stage "sale") → None, the ordinary refund.
        """
        if sale_id in batch.payments:
            return ("prepayment", None) if self.config.flow == FLOW_PREPAYMENT else (None, None)
        recs = self.ledger.receipts_of(sale_id)
        settled = [r for r in recs if r.stage == "settlement" and r.state is not State.REJECTED and r.body]
        if settled:
            return "settlement", _rate_family_day([it.vat for r in settled for it in r.receipt().items])
        if any(r.stage == "prepayment" for r in recs):
            return "prepayment", None
        return None, None


def _rate_family_day(vats: Sequence[Vat]) -> dt.date | None:
    """A date on which the general rate was the one these settlement lines carry (20 % or 22 %)."""
    if any(v in (Vat.VAT22, Vat.VAT122) for v in vats):
        return VAT22_FROM
    if any(v in (Vat.VAT20, Vat.VAT120) for v in vats):
        return VAT22_FROM - dt.timedelta(days=1)
    return None


class DeliveryPlanner:
    """Turns shop deliveries into settlement receipts of their payments (prepayment flow)."""

    def __init__(self, ledger: Ledger, config: ReceiptConfig, source: Any, payments: Planner, *,
                 start_after_id: int = 0) -> None:
        self.ledger = ledger
        self.config = config
        self.source = source
        self.payments = payments
        self.start_after_id = start_after_id

    def plan_deliveries(self, rows: Sequence[ShopDelivery]) -> tuple[list[SettlementEntry], list[tuple[int, str]]]:
        """Settlement entries for *rows*, and the ids of rows that cannot be placed with the reason.

        A delivery whose payment the payments poller has not ingested yet ingests that payment itself
        (read by id from the shop) so that nothing waits on the order in which the two pollers run.
        """
        out: list[SettlementEntry] = []
        rejected: list[tuple[int, str]] = []
        fetched: dict[int, ShopPayment] = {}
        for d in rows:
            pid = d.payment_id
            if isinstance(pid, bool) or not isinstance(pid, int):
                rejected.append((d.id, f"deliveries.payment_id: {pid!r} is not a payment id"[:64]))
                continue
            entry = None
            sale = fetched.get(pid) or self.ledger.payment_snapshot(pid)
            if sale is None:
                found = self.source.fetch_by_ids([pid])
                if not found:
                    log.error("delivery %d names payment %d, which the shop does not have", d.id, pid,
                              extra={"source": "deliveries", "source_id": d.id})
                    rejected.append((d.id, f"deliveries.payment_id: payment {pid} is unknown"))
                    continue
                if pid <= self.start_after_id:
                    log.error("delivery %d names payment %d, at or below source.start_after_id; backfill it first",
                              d.id, pid, extra={"source": "deliveries", "source_id": d.id})
                    rejected.append((d.id, f"deliveries.payment_id: {pid} <= start_after_id"))
                    continue
                sale = fetched[pid] = found[0]
                entry = IngestEntry(sale, self.payments.plan(sale))
            out.append(SettlementEntry(d.id, pid, self._plan_one(d, sale, entry), payment=entry))
        return out, rejected

    def _plan_one(self, d: ShopDelivery, sale: ShopPayment, entry: IngestEntry | None) -> tuple[PlannedRow, ...]:
        tag = make_tag(sale.id, "settlement", 1)
        stages = {p.stage for p in entry.planned} if entry else {r.stage for r in self.ledger.receipts_of(sale.id)}
        if "sale" in stages:
            return (PlannedRow("settlement", 1, tag, error=(
                f"deliveries.payment_id: payment {sale.id} was fiscalized as a full payment (stage sale, "
                "receipts.flow was single); there is no prepayment to settle")),)
        return build_or_reject(
            lambda: build_settlement(sale, self.config, delivered_at=d.delivered_at,
                                     already_refunded=self.ledger.refunded_quantities(sale.id)),
            stage="settlement", tag=tag, what="settlement", source_id=sale.id)
