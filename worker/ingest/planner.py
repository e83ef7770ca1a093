"""Turn a shop row into the receipts the ledger will track — or one rejected row naming the field.

Refunds and settlements mirror the receipts *as issued* (read back from the ledger with the shop line
of every receipt line), never a receipt rebuilt from today's settings; what earlier refunds took from
each line is summed from their issued receipts too. A refund of a sale made before go-live
(id ≤ ``source.start_after_id``) reads the sale from the shop and records it in the ledger as issued
by another system.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Sequence

from kkt_drivers.receipt import Receipt, Vat
from worker.ingest.routing import Router
from worker.ledger.states import State
from worker.ledger.store import IngestEntry, Ledger, PlannedRow, SettlementEntry, utcnow
from worker.receipts.build import build_receipts
from worker.receipts.config import FLOW_SINGLE, PlannedReceipt, ReceiptConfig, make_tag
from worker.receipts.issued import IssuedLine, IssuedSale, Refunded
from worker.receipts.plan import Stage, rows_of
from worker.receipts.prepayment import build_settlement
from worker.receipts.rules import VAT22_FROM, InvalidPayment, parse_paid_at
from worker.shop.rows import KIND_REFUND, ShopPayment
from worker.shop.source import ShopDelivery

log = logging.getLogger(__name__)

#: the ledger note on a sale whose receipt another system issued (before go-live)
EXTERNAL_NOTE = ("receipt issued by another system before go-live (id <= source.start_after_id); "
                 "recorded from the shop row for refund {refund}")


def as_rows(planned: Sequence[PlannedReceipt]) -> tuple[PlannedRow, ...]:
    """Built receipts as the rows the ledger stores; warnings are kept in the row's last_error."""
    return rows_of(planned)


def build_or_reject(build: Callable[[], Sequence[PlannedReceipt]], *, stage: str, tag: str, what: str,
                    source_id: int) -> tuple[PlannedRow, ...]:
    """Run *build*; what it cannot build becomes one rejected row naming the field and the next step.

    A bug in a builder must not stop ingest either: it is logged with its traceback and the row is
    rejected with the error, waiting for a fix and a resend.
    """
    try:
        rows = as_rows(build())
    except InvalidPayment as exc:
        log.warning("%s rejected: %s", what, exc, extra={"source_id": source_id})
        return (PlannedRow(stage, 1, tag, error=exc.describe(source_id)),)
    except Exception as exc:
        log.exception("could not build the %s (bug)", what, extra={"source_id": source_id})
        return (PlannedRow(stage, 1, tag, error=f"internal error while building the {what}: "
                                                f"{type(exc).__name__}: {exc}. Next: report it with the log; "
                                                f"after the fix run `kkt-worker resend --id {source_id}`"),)
    for r in rows:
        if r.error:
            log.warning("%s %s: %s", what, r.tag, r.error, extra={"source_id": source_id})
    return rows


@dataclass
class Batch:
    """Rows planned earlier in the same poll, not yet in the ledger."""

    payments: dict[int, ShopPayment] = field(default_factory=dict)
    planned: dict[int, tuple[PlannedRow, ...]] = field(default_factory=dict)
    #: refunds planned in this poll: sale id → [(refund id, rows)]
    refunds: dict[int, list[tuple[int, tuple[PlannedRow, ...]]]] = field(default_factory=dict)


def _issued_lines(rows: Sequence[tuple[Receipt, str | None]]) -> list[IssuedLine] | None:
    """The lines of receipts (in part order) with their shop line numbers; None if one lacks them."""
    out: list[IssuedLine] = []
    for receipt, lines in rows:
        if lines is None:
            return None
        nos = json.loads(lines) if isinstance(lines, str) else list(lines)
        if len(nos) != len(receipt.items):
            return None
        out.extend(IssuedLine(int(n), it) for n, it in zip(nos, receipt.items))
    return out


def _mirrors(receipt: Receipt) -> str:
    """Which stage a refund receipt mirrored: the prepayment (1214 = 1..3) or the goods (sale/settlement)."""
    return "prepayment" if receipt.items and int(receipt.items[0].payment_method) <= 3 else "goods"


class Planner:
    """Builds receipts with :func:`worker.receipts.build.build_receipts`, looking up refunded originals.

    *fetch_sale* reads one shop row by id (for refunds of sales made before go-live, id ≤
    *start_after_id*); *clock* gives "now" for the lateness rule.
    """

    def __init__(self, ledger: Ledger, config: ReceiptConfig, *, router: Router | None = None,
                 fetch_sale: Callable[[int], ShopPayment | None] | None = None, start_after_id: int = 0,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.ledger = ledger
        self.config = config
        self.fetch_sale = fetch_sale
        self.start_after_id = start_after_id
        self.clock = clock
        self.router = router if router is not None else Router.single()

    @staticmethod
    def new_batch() -> Batch:
        """State shared by the rows of one poll."""
        return Batch()

    def today(self) -> dt.date:
        """The local date at the place of settlement now (the ledger clock is naive UTC)."""
        now = self.clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
        return now.astimezone(self.config.zone).date()

    def plan(self, payment: ShopPayment, batch: Batch | None = None) -> tuple[PlannedRow, ...]:
        """The receipts for *payment*; a row that cannot become a correct receipt is one rejected row."""
        batch = batch if batch is not None else Batch()
        is_refund = payment.kind == KIND_REFUND
        stage = Stage.REFUND if is_refund else Stage.SALE
        today = self.today()

        def build() -> Sequence[PlannedReceipt]:
            if is_refund and isinstance(payment.refund_of, int) and not isinstance(payment.refund_of, bool):
                return self._refund(payment, batch, today)
            return build_receipts(payment, self.config, today=today)

        rows = self.router.route(payment, build_or_reject(build, stage=stage, tag=make_tag(payment.id, stage, 1),
                                                          what="receipt", source_id=payment.id))
        if any(r.receipt is None for r in rows):
            return rows
        batch.payments[payment.id] = payment
        batch.planned[payment.id] = rows
        if is_refund:
            batch.refunds.setdefault(payment.refund_of, []).append((payment.id, rows))  # type: ignore[arg-type]
        return rows

    # -- refunds --------------------------------------------------------------------------------
    def _refund(self, payment: ShopPayment, batch: Batch, today: dt.date) -> Sequence[PlannedReceipt]:
        sale_id: int = payment.refund_of  # type: ignore[assignment]
        refund_stage, settled_on = self.refunded_stage(sale_id, batch)
        original = batch.payments.get(sale_id) or self.ledger.payment_snapshot(sale_id)
        issued = None
        if original is not None:
            issued = self.issued(sale_id, refund_stage or Stage.SALE, batch, original)
        elif sale_id <= self.start_after_id and self.fetch_sale is not None:
            original = self._external_sale(sale_id, payment.id)
        already = self.refunded(sale_id, "prepayment" if refund_stage == Stage.PREPAYMENT else "goods",
                                issued, batch, excluding=payment.id)
        return build_receipts(payment, self.config, original=original, already_refunded=already,
                              refund_stage=None if issued else refund_stage, settled_on=settled_on,
                              issued=issued, today=today)

    def _external_sale(self, sale_id: int, refund_id: int) -> ShopPayment | None:
        """A sale before go-live: read from the shop (it is still there), recorded in the ledger as issued
        by another system, with the receipt lines it must have had (the rates of its date)."""
        sale = self.fetch_sale(sale_id) if self.fetch_sale else None
        if sale is None:
            return None
        try:
            # no "today": the other system issued it on time. GUESS: as one full payment (1214 = 4) — an
            # order from before go-live has normally been delivered, so its refund mirrors the goods
            planned = build_receipts(sale, dataclasses.replace(self.config, flow=FLOW_SINGLE))
        except InvalidPayment:
            return sale   # the refund's own build names the sale's bad field (original.…)
        note = EXTERNAL_NOTE.format(refund=refund_id)
        rows = [PlannedRow(Stage.EXTERNAL.value, p.part, make_tag(sale_id, Stage.EXTERNAL, p.part), receipt=p.receipt,
                           lines=p.lines, error=note, issued_elsewhere=True) for p in planned]
        self.ledger.add_planned(sale_id, rows, payment=sale)
        log.info("sale %d before go-live read from the shop for refund %d; %s", sale_id, refund_id, note,
                 extra={"source_id": refund_id})
        return sale

    def issued(self, sale_id: int, stage: str, batch: Batch, original: ShopPayment) -> IssuedSale | None:
        """What the sale's receipts of *stage* carried (from this poll or the ledger), or None when the
        ledger has no usable body (the lines are then rebuilt from the snapshot)."""
        stages = (Stage.SALE, Stage.EXTERNAL) if stage == Stage.SALE else (stage,)
        if sale_id in batch.planned:
            found = [(r.receipt, r.lines) for r in batch.planned[sale_id] if r.stage in stages and r.receipt]
        else:
            recs = sorted((r for r in self.ledger.receipts_of(sale_id)
                           if r.stage in stages and r.state is not State.REJECTED and r.body),
                          key=lambda r: (r.stage, r.part))
            found = [(r.receipt(), r.lines) for r in recs]
        if not found:
            return None
        lines = _issued_lines(found) or self._legacy_lines(original, found)  # type: ignore[arg-type]
        if lines is None:
            return None   # no way to tell the lines apart: rebuilt from the snapshot
        try:
            day = parse_paid_at(original.paid_at, "original.payments.paid_at", self.config.zone)
        except InvalidPayment:
            day = None
        first: Receipt = found[0][0]  # type: ignore[assignment]
        return IssuedSale(tuple(lines), first.customer_contact or "", day, first.tax_system)

    def _legacy_lines(self, original: ShopPayment,
                      found: Sequence[tuple[Receipt, Any]]) -> list[IssuedLine] | None:
        """Line numbers for receipts stored before the ledger kept them: the sale row rebuilt gives the
        order of its lines, the stored bodies give the requisites as issued. None unless every line
        matches by name (a changed row or a gift swapped between parts)."""
        try:
            planned = build_receipts(original, dataclasses.replace(self.config, max_items_per_receipt=10**6,
                                                                   flow=FLOW_SINGLE))
        except InvalidPayment:
            return None
        nos = [n for p in planned for n in p.lines]
        rebuilt = [it for p in planned for it in p.receipt.items]
        items = [it for receipt, _ in found for it in receipt.items]
        if len(nos) != len(items) or any(a.name != b.name for a, b in zip(rebuilt, items)):
            return None
        return [IssuedLine(n, it) for n, it in zip(nos, items)]

    def refunded(self, sale_id: int, mirrors: str, issued: IssuedSale | None, batch: Batch, *,
                 excluding: int | None = None) -> dict[int, Refunded]:
        """Cumulative quantity and amount per shop line taken by earlier refunds of *sale_id* that
        mirrored *mirrors* ("prepayment" or "goods"), from their issued receipts."""
        out: dict[int, Refunded] = {}

        def add(line_no: int, qty: Decimal, amount: Decimal) -> None:
            r = out.get(line_no, Refunded())
            out[line_no] = Refunded(r.quantity + qty, r.amount + amount)

        by_refund: dict[int, list[tuple[Receipt, str | tuple[int, ...] | None]]] = {}
        for rec in self.ledger.refunds_of(sale_id):
            if rec.source_id != excluding and rec.state is not State.REJECTED and rec.body:
                by_refund.setdefault(rec.source_id, []).append((rec.receipt(), rec.lines))
        for refund_id, rows in batch.refunds.get(sale_id, []):
            if refund_id != excluding:
                by_refund[refund_id] = [(r.receipt, r.lines) for r in rows if r.receipt]
        for refund_id, receipts in by_refund.items():
            if not receipts or _mirrors(receipts[0][0]) != mirrors:
                continue
            lines = _issued_lines(receipts)  # type: ignore[arg-type]
            if lines is not None:
                for ln in lines:
                    add(ln.line_no, ln.item.quantity, ln.item.amount)
                continue
            snap = self.ledger.payment_snapshot(refund_id)   # a refund from before line numbers were stored
            for item in snap.items if snap else ():
                try:
                    add(int(item.line_no), Decimal(item.quantity), Decimal(item.amount))
                except Exception:  # a malformed refund row was rejected; it refunds nothing
                    continue
        return out

    def refunded_stage(self, sale_id: int, batch: Batch) -> tuple[str | None, dt.date | None]:
        """Which stage a refund of *sale_id* mirrors (prepayment flow), decided when the refund is planned.

        Not delivered yet (no settlement receipt, or only a rejected one) → the prepayment; delivered →
        the settlement, at the rate family its receipt used. A sale fiscalized as one full payment
        (stage "sale") → None, the ordinary refund.
        """
        if sale_id in batch.payments:
            stages = {r.stage for r in batch.planned.get(sale_id, ())}
            return (Stage.PREPAYMENT, None) if Stage.PREPAYMENT in stages else (None, None)
        recs = self.ledger.receipts_of(sale_id)
        settled = [r for r in recs if r.stage == Stage.SETTLEMENT and r.state is not State.REJECTED and r.body]
        if settled:
            return Stage.SETTLEMENT, _rate_family_day([it.vat for r in settled for it in r.receipt().items])
        if any(r.stage == Stage.PREPAYMENT for r in recs):
            return Stage.PREPAYMENT, None
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
        tag = make_tag(sale.id, Stage.SETTLEMENT, 1)
        stages = {p.stage for p in entry.planned} if entry else {r.stage for r in self.ledger.receipts_of(sale.id)}
        if Stage.SALE in stages:
            return (PlannedRow(Stage.SETTLEMENT.value, 1, tag, error=(
                f"deliveries.payment_id: payment {sale.id} was fiscalized as a full payment (stage sale, "
                "receipts.flow was single); there is no prepayment to settle")),)
        batch = self.payments.new_batch()
        if entry is not None:
            batch.payments[sale.id], batch.planned[sale.id] = sale, entry.planned
        issued = self.payments.issued(sale.id, Stage.PREPAYMENT, batch, sale)
        return build_or_reject(
            lambda: build_settlement(sale, self.config, delivered_at=d.delivered_at, issued=issued,
                                     already_refunded=self.payments.refunded(sale.id, "prepayment", issued, batch),
                                     today=self.payments.today()),
            stage=Stage.SETTLEMENT.value, tag=tag, what="settlement", source_id=sale.id)
