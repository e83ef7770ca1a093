"""One receipt on one register: intent → fiscalize → outcome. No loop, no waiting.

The order is the whole point: the intent (register, FN serial, last FD number, tag) is committed
durably *before* the register is called, so that after any crash :mod:`worker.fiscal.recovery` can read
the register's documents after ``fd_before`` and find ours by its tag (requisite 1192).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError

from kkt_drivers.base import Driver
from kkt_drivers.errors import KktError, OutcomeUnknownError
from kkt_drivers.receipt import DeviceStatus, FiscalDocument
from worker.errors import LeaseLost, StateConflict
from worker.fiscal.crashpoints import crashpoint, failpoint
from worker.fiscal.retry import Decision, Reaction, decide, describe
from worker.ledger.states import State
from worker.ledger.lane_writes import Claim
from worker.ledger.store import Fence, Ledger, ReceiptRecord, utcnow
from worker.settings import RetrySettings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: first and longest wait between tries to record an outcome the register already made
RECORD_RETRY_FIRST_SECONDS = 0.5
RECORD_RETRY_CAP_SECONDS = 30.0
#: tries left once a stop was requested (the receipt then stays "sending" and is reconciled at the next start)
RECORD_TRIES_AFTER_STOP = 3


@dataclass(frozen=True)
class Outcome:
    """What happened to one receipt; ``decision`` (after an error) tells the lane whether to pause or stop."""

    state: State | None
    decision: Decision | None = None
    error: BaseException | None = None
    #: the fiscal document when the receipt is done (the lane learns the register's new position)
    document: FiscalDocument | None = None
    #: the outcome's write also moved the register's watermark to this document (nothing unexamined before it)
    watermark_moved: bool = False
    #: the next receipt, claimed in the outcome's own write (``send(..., then_claim=group)``): its intent is
    #: committed, so the lane must send it (or reconcile it) before anything else
    next_claim: Claim | None = None


class Processor:
    """Fiscalizes single receipts on one register for one lane."""

    def __init__(self, lane: str, driver: Driver, ledger: Ledger, policy: RetrySettings, *,
                 clock: Callable[[], dt.datetime] = utcnow,
                 fence: Callable[[], Fence | None] = lambda: None,
                 check_send: Callable[[], None] = lambda: None,
                 stop: threading.Event | None = None) -> None:
        self.lane = lane
        self.driver = driver
        self.ledger = ledger
        self.policy = policy
        self.clock = clock
        self.fence = fence            # the lane's lease: every write is checked against its epoch
        self.check_send = check_send  # LeaseLost unless the lease was renewed recently enough to send
        self.stop = stop or threading.Event()

    def process(self, rec: ReceiptRecord, status: DeviceStatus) -> Outcome:
        """Fiscalize *rec* on a register whose *status* was just checked (shift open, no receipt open)."""
        crashpoint("before_intent")
        try:
            attempt_id = self.ledger.record_intent(rec.id, register=self.lane, fn_serial=status.fn_serial,
                                                   fd_before=status.last_fd_number, fence=self.fence())
        except StateConflict as exc:
            log.info("not sent: %s", exc, extra={"receipt_tag": rec.tag, "register": self.lane})
            return Outcome(None)  # another lane took it first, or the register already has it (adopted)
        return self.send(rec, attempt_id, status.last_fd_number)

    def send(self, rec: ReceiptRecord, attempt_id: int, fd_before: int, *, then_claim: str | None = None) -> Outcome:
        """Fiscalize *rec*, whose intent (``attempt_id``) is already committed, and record the outcome.

        LeaseLost (before anything reaches the register) when the lease is not fresh enough to send:
        the receipt stays "sending" and whoever holds the register next reconciles it.

        *then_claim* (a register group): when the receipt is done, claim the group's next receipt in the
        outcome's own write (one durable commit per receipt instead of two); it comes back as
        ``Outcome.next_claim``.
        """
        ctx = {"payment_id": rec.source_id, "receipt_tag": rec.tag, "register": self.lane,
               "attempt": rec.attempts + 1}
        receipt = rec.receipt()
        crashpoint("after_intent")
        # the register cannot check our epoch: the last check is that the lease is fresh enough now
        self.check_send()
        if log.isEnabledFor(logging.DEBUG):   # the total is a sum over the lines: not for nothing
            log.debug("sending receipt (total %s, fd_before %d)", receipt.total, fd_before, extra=ctx)
        try:
            doc = self.driver.fiscalize(receipt)
        except LeaseLost:   # the lane's step hook found the lease gone before the close: nothing was closed
            raise           # the receipt stays "sending"; the new holder reconciles it
        except Exception as exc:  # every failure is classified; none escapes unrecorded
            return self._failed(rec, attempt_id, exc, ctx)

        if (doc.tag is not None and doc.tag != receipt.tag) or (doc.total is not None and doc.total != receipt.total):
            msg = (f"register answered with document {doc.fd_number} (tag {doc.tag!r}, total {doc.total}) "
                   f"that does not match tag {receipt.tag!r}, total {receipt.total}")
            log.error(msg, extra=ctx)
            self._record(doc, ctx, lambda: self.ledger.record_final(
                rec.id, State.NEEDS_REVIEW, attempt_id=attempt_id, error=msg, error_class="mismatch",
                fence=self.fence()))
            return Outcome(State.NEEDS_REVIEW)
        nxt: Claim | None = None
        try:
            if then_claim is None:
                moved = self._record(doc, ctx, lambda: self.ledger.record_done(
                    rec.id, doc, attempt_id=attempt_id, fence=self.fence(), register=self.lane,
                    fd_before=fd_before))
            else:
                crashpoint("before_intent")   # this write is also the next receipt's intent
                moved, nxt = self._record(doc, ctx, lambda: self.ledger.record_done_and_claim(
                    rec.id, doc, attempt_id=attempt_id, fence=self.fence(), register=self.lane,
                    fd_before=fd_before, group=then_claim))
        except OutcomeUnknownError as exc:   # from _record: the ledger's answer was lost, the write may stand
            log.warning("%s; reconciling before anything else", exc, extra=ctx)
            return Outcome(State.SENDING, decide(exc, rec.attempts, self.policy, now=self.clock()), exc)
        crashpoint("after_outcome")
        if log.isEnabledFor(logging.INFO):
            log.info("receipt done: FD %d, FP %d, shift %d", doc.fd_number, doc.fiscal_sign, doc.shift_number,
                     extra=ctx)
        return Outcome(State.DONE, document=doc, watermark_moved=bool(moved), next_claim=nxt)

    def _record(self, doc: object, ctx: dict, write: Callable[[], T]) -> T:
        """Record what the register already made; never give up while the ledger is away (disk full,
        link down): the document exists, only the ledger does not know yet. LeaseLost propagates —
        the new holder adopts the document by scanning the register.

        A retry whose guard finds the receipt moved (StateConflict) after a failed try raises
        OutcomeUnknownError: the failed try's answer was lost, not necessarily its write (a commit, or on
        PostgreSQL a statement committing itself, can land while the link drops) — the write and the
        next receipt it claimed may stand, so the lane reconciles before anything else."""
        delay, left_after_stop = RECORD_RETRY_FIRST_SECONDS, RECORD_TRIES_AFTER_STOP
        failed = False
        while True:
            try:
                failpoint("record_outcome")
                return write()
            except StateConflict as exc:
                if not failed:
                    raise
                raise OutcomeUnknownError(f"the ledger lost its answer to recording {doc} and the retry "
                                          f"found the receipt moved ({exc}): the first write may stand"
                                          ) from exc
            except DBAPIError as exc:
                failed = True
                if self.stop.is_set():
                    left_after_stop -= 1
                    if left_after_stop <= 0:
                        log.error("stopping with the outcome unrecorded: the receipt stays sending and is "
                                  "reconciled at the next start (register document %s)", doc, extra=ctx)
                        raise
                log.error("the register made %s but recording it in the ledger failed (%s: %s); "
                          "retrying in %.1f s — nothing else is sent meanwhile", doc, type(exc.orig).__name__,
                          str(exc.orig).splitlines()[0] if exc.orig else exc, delay, extra=ctx)
                self.stop.wait(delay)
                delay = min(RECORD_RETRY_CAP_SECONDS, delay * 2)

    def _failed(self, rec: ReceiptRecord, attempt_id: int, exc: BaseException, ctx: dict) -> Outcome:
        """Execute :func:`~worker.fiscal.retry.decide`'s decision; nothing is decided here."""
        decision = decide(exc, rec.attempts, self.policy, now=self.clock())
        message = describe(exc)
        if decision.reconcile:
            # the close may have reached the register: leave it "sending" for reconciliation
            if decision.reaction is Reaction.BUG:
                log.exception("unexpected error from the register driver; reconciling", extra=ctx)
            else:
                log.warning("outcome unknown (%s); reconciling before anything else", message, extra=ctx)
            return Outcome(State.SENDING, decision, exc)

        # the contract: these errors mean the document was certainly not fiscalized
        self._cancel_open_receipt(ctx)
        if decision.state is State.REJECTED:
            log.error("register rejected the receipt: %s", message, extra=ctx)
            self.ledger.record_final(rec.id, State.REJECTED, attempt_id=attempt_id, error=message,
                                     error_class=decision.reaction.value, fence=self.fence())
            return Outcome(State.REJECTED, decision, exc)
        new = self.ledger.record_retry(rec.id, attempt_id=attempt_id, new=decision.state,
                                       attempts=decision.attempts, next_attempt_at=decision.when,
                                       error=message, error_class=decision.reaction.value,
                                       fence=self.fence())
        log.warning("not fiscalized (%s): %s; now %s", decision.reaction.value, message, new.value, extra=ctx)
        return Outcome(new, decision, exc)

    def _cancel_open_receipt(self, ctx: dict) -> None:
        try:
            self.driver.cancel_receipt()
        except KktError as exc:  # the next status check sees the open receipt and cancels it then
            log.warning("could not cancel the open receipt: %s", describe(exc), extra=ctx)
