"""The pipeline's data as the ledger stores it: planned receipts, ingest entries, gaps, receipt records.

Pure data plus the column list a receipt record is selected with; no database access here.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kkt_drivers import receipt_json
from kkt_drivers.receipt import Receipt
from worker.ledger.schema import payments, receipts
from worker.ledger.states import NOT_ISSUED, State
from worker.receipts.plan import PlannedRow
from worker.shop.rows import ShopPayment

def utcnow() -> dt.datetime:
    """Naive UTC now, the ledger's time."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


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
    #: the shop's payment time (naive, the shop's zone) and amount, for reports and exports
    paid_at: dt.datetime | None = None
    payment_amount: Decimal | None = None
    #: JSON list of the shop's line_no per receipt line, as issued
    lines: str | None = None
    #: the register group that may print it (routing; docs/pool.md)
    register_group: str = "default"

    @property
    def issued(self) -> bool:
        """A document exists or may exist: not rejected, failed or superseded."""
        return self.state not in NOT_ISSUED

    @property
    def done(self) -> bool:
        """Fiscalized: the document's requisites are recorded."""
        return self.state is State.DONE

    @property
    def rejected(self) -> bool:
        """Refused (our validation or the register); waits for a fixed row and a resend."""
        return self.state is State.REJECTED

    def receipt(self) -> Receipt:
        """The built receipt (only for rows that have one)."""
        assert self.body is not None, f"receipt {self.tag} has no body"
        return receipt_json.loads(self.body)


RECORD_COLS = (
    receipts.c.id, payments.c.source_id, receipts.c.payment_id, receipts.c.stage, receipts.c.part,
    receipts.c.tag, receipts.c.state, receipts.c.register, receipts.c.attempts, receipts.c.next_attempt_at,
    receipts.c.total, receipts.c.body, receipts.c.fn_serial, receipts.c.fd_before, receipts.c.fd_number,
    receipts.c.fiscal_sign, receipts.c.shift_number, receipts.c.receipt_number, receipts.c.fiscal_at,
    receipts.c.qr, receipts.c.error_class, receipts.c.last_error, payments.c.kind, payments.c.refund_of,
    receipts.c.created_at, receipts.c.updated_at, payments.c.paid_at,
    payments.c.amount.label("payment_amount"), receipts.c.lines, receipts.c.register_group,
)


def record_from_row(row: Any) -> ReceiptRecord:
    """A ReceiptRecord from a row selected with RECORD_COLS."""
    return record_from_mapping(dict(row._mapping))


def record_from_mapping(m: dict[str, Any]) -> ReceiptRecord:
    """A ReceiptRecord from {column key: value} of RECORD_COLS (*m* is consumed)."""
    m["state"] = State(m["state"])
    return ReceiptRecord(**m)


#: the largest amount a ledger money column stores (built once: decimal_or_none runs per ingested row)
_MONEY_BOUND = Decimal("1e12")


def decimal_or_none(value: Any) -> Decimal | None:
    """*value* if it is a storable money Decimal, else None (a malformed shop amount stays in the snapshot)."""
    if isinstance(value, Decimal) and value.is_finite() and abs(value) < _MONEY_BOUND:
        return value
    return None


def naive_utc(value: Any) -> dt.datetime | None:
    """A shop time for the ledger's naive-UTC columns (aware values are converted; naive kept)."""
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value
